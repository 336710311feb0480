//! Workload controllers, simplified but real enough for `kubectl rollout status`,
//! `kubectl wait` and kube-rs watchers:
//!
//! - Deployment -> ReplicaSets named `<deployment>-<pod-template-hash>`, rolled on
//!   template change (the new ReplicaSet is scaled up, then the old ones to zero, or the
//!   reverse for `Recreate`), with `deployment.kubernetes.io/revision` and the usual status
//!   and Available/Progressing conditions;
//! - ReplicaSet -> Pods `<replicaset>-<random>`;
//! - StatefulSet -> Pods `<name>-<ordinal>` (in order unless `podManagementPolicy:
//!   Parallel`) and PVCs `<template>-<name>-<ordinal>`, not owned unless
//!   `persistentVolumeClaimRetentionPolicy.whenDeleted` is `Delete`;
//! - DaemonSet -> one Pod per schedulable node;
//! - Job -> Pods until `completions` succeeded, then `Complete` and `SuccessCriteriaMet`;
//! - CronJob -> a Job per due time of its five-field schedule (UTC), keeping the
//!   configured history.
//!
//! It also holds the defaults the API server fills in on writes of workloads, pods and
//! volumes ([`default_fields`], called from `verbs.rs`).
//!
//! Owns the workload objects' status and their children. Must not set pod status: that is
//! `pods.rs`.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::changes::Scope;
use super::controllers::{
    condition, controlled_by, controller_ref, create, delete, deleting, event, get, in_scope, list,
    log_err, name_of, ns_of, selector_matches, set_status, stable_hash, uid_of, update,
};
use super::verbs::{ApiResult, Cluster, now};

fn int(v: &Value, default: i64) -> i64 {
    v.as_i64().unwrap_or(default)
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

pub fn pod_ready(pod: &Value) -> bool {
    !deleting(pod)
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn active(pod: &Value) -> bool {
    !deleting(pod) && !matches!(phase(pod), "Succeeded" | "Failed")
}

/// The pods of `ns` controlled by `uid`.
fn owned_pods(c: &Cluster, ns: &str, uid: &str) -> Vec<Value> {
    c.store
        .list("", "pods", Some(ns))
        .filter(|(_, p)| controlled_by(p, uid))
        .map(|(_, p)| p.clone())
        .collect()
}

/// A pod made from a template, owned by `owner`.
fn pod_from_template(owner: &Value, template: &Value, extra_labels: &Value) -> Value {
    let mut meta = template["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    if let Some(extra) = extra_labels.as_object() {
        for (k, v) in extra {
            meta["labels"][k] = v.clone();
        }
    }
    meta["ownerReferences"] = controller_ref(owner);
    if let Some(m) = meta.as_object_mut() {
        m.remove("name");
        m.remove("namespace");
        m.remove("creationTimestamp");
    }
    let mut spec = template["spec"].clone();
    if spec["restartPolicy"].is_null() {
        spec["restartPolicy"] = json!("Always");
    }
    if spec["serviceAccountName"].is_null() {
        spec["serviceAccountName"] = json!("default");
    }
    if spec["schedulerName"].is_null() {
        spec["schedulerName"] = json!("default-scheduler");
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

/// Deployments: one ReplicaSet per template, scaled for a rolling update or a recreate.
pub fn deployments(c: &mut Cluster, scope: &Scope) -> bool {
    let mut failed = false;
    for d in in_scope(c, scope, "apps", "deployments", |o| !deleting(o)) {
        failed |= log_err(&format!("deployment {}", name_of(&d)), deployment(c, &d));
    }
    failed
}

fn revision(rs: &Value) -> i64 {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// maxUnavailable or maxSurge as a count of `replicas` (percentages round down for
/// unavailability, up for surge).
fn int_or_percent(v: &Value, replicas: i64, default_percent: i64, round_up: bool) -> i64 {
    let percent = match v {
        Value::Number(n) => return n.as_i64().unwrap_or(0),
        Value::String(s) => s
            .trim_end_matches('%')
            .parse::<i64>()
            .unwrap_or(default_percent),
        _ => default_percent,
    };
    let x = replicas * percent;
    if round_up { (x + 99) / 100 } else { x / 100 }
}

fn deployment(c: &mut Cluster, d: &Value) -> ApiResult<()> {
    let ns = ns_of(d).unwrap_or("default").to_string();
    let name = name_of(d).to_string();
    let uid = uid_of(d).to_string();
    let desired = int(&d["spec"]["replicas"], 1);
    let template = &d["spec"]["template"];
    let hash = stable_hash(template);
    let mut sets: Vec<Value> = list(c, "apps", "replicasets", Some(&ns), |rs| {
        controlled_by(rs, &uid) && !deleting(rs)
    });
    sets.sort_by_key(revision);
    let max_revision = sets.iter().map(revision).max().unwrap_or(0);
    let paused = d["spec"]["paused"].as_bool().unwrap_or(false);
    let new_rs = match sets
        .iter()
        .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
    {
        Some(rs) => {
            let mut rs = rs.clone();
            if revision(&rs) < max_revision {
                // A rollback to an older template: it becomes the newest revision.
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                    json!((max_revision + 1).to_string());
                rs = update(c, "apps", "replicasets", rs)?;
            }
            rs
        }
        None if paused => return Ok(()),
        None => {
            let mut tmpl = template.clone();
            tmpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {
                    "name": format!("{name}-{hash}"),
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/revision": (max_revision + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                        "deployment.kubernetes.io/max-replicas": desired.to_string(),
                    },
                    "ownerReferences": controller_ref(d),
                },
                "spec": {"replicas": 0, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                         "selector": selector, "template": tmpl},
            });
            let rs = create(c, "apps", "replicasets", Some(&ns), rs)?;
            event(
                c,
                d,
                "Normal",
                "ScalingReplicaSet",
                &format!("Scaled up replica set {} from 0 to {desired}", name_of(&rs)),
            );
            sets.push(rs.clone());
            rs
        }
    };
    let new_name = name_of(&new_rs).to_string();
    let olds: Vec<&Value> = sets.iter().filter(|rs| name_of(rs) != new_name).collect();
    let old_replicas: i64 = olds.iter().map(|rs| int(&rs["spec"]["replicas"], 0)).sum();
    if !paused {
        let recreate = d["spec"]["strategy"]["type"] == "Recreate";
        let new_available = int(&new_rs["status"]["availableReplicas"], 0);
        let new_target = if recreate && old_replicas > 0 {
            0
        } else {
            desired
        };
        scale(c, d, &new_rs, new_target)?;
        // Old ReplicaSets go to zero once the new one is available (or at once for
        // Recreate), so that a rollout never leaves the service without pods.
        if recreate || new_available >= desired {
            for old in &olds {
                scale(c, d, old, 0)?;
            }
        }
    }
    // Keep `revisionHistoryLimit` old ReplicaSets.
    let limit = int(&d["spec"]["revisionHistoryLimit"], 10).max(0) as usize;
    let idle: Vec<&&Value> = olds
        .iter()
        .filter(|rs| int(&rs["spec"]["replicas"], 0) == 0 && int(&rs["status"]["replicas"], 0) == 0)
        .collect();
    if idle.len() > limit {
        for rs in &idle[..idle.len() - limit] {
            delete(c, "apps", "replicasets", rs)?;
        }
    }
    deployment_status(c, d, &new_name)
}

fn scale(c: &mut Cluster, d: &Value, rs: &Value, replicas: i64) -> ApiResult<()> {
    let Some(mut rs) = get(c, "apps", "replicasets", ns_of(rs), name_of(rs)) else {
        return Ok(());
    };
    let from = int(&rs["spec"]["replicas"], 0);
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1).to_string();
    let same_annotation =
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == want.as_str();
    if from == replicas && same_annotation {
        return Ok(());
    }
    rs["spec"]["replicas"] = json!(replicas);
    rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = json!(want);
    rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] = json!(want);
    let rs = update(c, "apps", "replicasets", rs)?;
    if from != replicas {
        let verb = if replicas > from { "up" } else { "down" };
        event(
            c,
            d,
            "Normal",
            "ScalingReplicaSet",
            &format!(
                "Scaled {verb} replica set {} from {from} to {replicas}",
                name_of(&rs)
            ),
        );
    }
    Ok(())
}

fn deployment_status(c: &mut Cluster, d: &Value, new_name: &str) -> ApiResult<()> {
    let ns = ns_of(d).unwrap_or("default").to_string();
    let uid = uid_of(d).to_string();
    let Some(d) = get(c, "apps", "deployments", Some(&ns), name_of(d)) else {
        return Ok(());
    };
    let sets: Vec<Value> = list(c, "apps", "replicasets", Some(&ns), |rs| {
        controlled_by(rs, &uid)
    });
    let sum = |f: &str| -> i64 { sets.iter().map(|rs| int(&rs["status"][f], 0)).sum() };
    let replicas = sum("replicas");
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let updated = sets
        .iter()
        .find(|rs| name_of(rs) == new_name)
        .map(|rs| int(&rs["status"]["replicas"], 0))
        .unwrap_or(0);
    let desired = int(&d["spec"]["replicas"], 1);
    let max_unavailable = if d["spec"]["strategy"]["type"] == "Recreate" {
        0
    } else {
        int_or_percent(
            &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            desired,
            25,
            false,
        )
    };
    let old = &d["status"]["conditions"];
    let available_cond = if available >= desired - max_unavailable {
        condition(
            old,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            true,
        )
    } else {
        condition(
            old,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            true,
        )
    };
    let complete = updated == desired && replicas == desired && available == desired;
    let progressing = if complete {
        condition(
            old,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            true,
        )
    } else {
        condition(
            old,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{new_name}\" is progressing."),
            true,
        )
    };
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": [available_cond, progressing],
    });
    if replicas > available {
        status["unavailableReplicas"] = json!(replicas - available);
    }
    omit_zero(
        &mut status,
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ],
    );
    let mut d2 = d.clone();
    let revision = sets
        .iter()
        .find(|rs| name_of(rs) == new_name)
        .map(revision)
        .unwrap_or(1);
    if d["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        != revision.to_string().as_str()
    {
        d2["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
            json!(revision.to_string());
        d2 = update(c, "apps", "deployments", d2)?;
    }
    set_status(c, "apps", "deployments", &d2, status).map(|_| ())
}

/// ReplicaSets: as many running pods as replicas.
pub fn replica_sets(c: &mut Cluster, scope: &Scope) -> bool {
    let mut failed = false;
    for rs in in_scope(c, scope, "apps", "replicasets", |o| !deleting(o)) {
        failed |= log_err(&format!("replicaset {}", name_of(&rs)), replica_set(c, &rs));
    }
    failed
}

fn replica_set(c: &mut Cluster, rs: &Value) -> ApiResult<()> {
    let ns = ns_of(rs).unwrap_or("default").to_string();
    let desired = int(&rs["spec"]["replicas"], 1);
    let mut pods: Vec<Value> = owned_pods(c, &ns, uid_of(rs))
        .into_iter()
        .filter(active)
        .collect();
    let have = pods.len() as i64;
    if have < desired {
        for _ in have..desired {
            let mut pod = pod_from_template(rs, &rs["spec"]["template"], &Value::Null);
            pod["metadata"]["generateName"] = json!(format!("{}-", name_of(rs)));
            let pod = create_pod(c, rs, &ns, pod, |e| format!("Error creating: {e}"))?;
            event(
                c,
                rs,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {}", name_of(&pod)),
            );
        }
    } else if have > desired {
        // Delete the least useful first: unscheduled, not ready, then the newest.
        pods.sort_by_key(|p| {
            (
                p["spec"]["nodeName"].is_string(),
                pod_ready(p),
                std::cmp::Reverse(
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
            )
        });
        for p in pods.iter().take((have - desired) as usize) {
            delete(c, "", "pods", p)?;
            event(
                c,
                rs,
                "Normal",
                "SuccessfulDelete",
                &format!("Deleted pod: {}", name_of(p)),
            );
        }
    }
    let pods: Vec<Value> = owned_pods(c, &ns, uid_of(rs))
        .into_iter()
        .filter(active)
        .collect();
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let labeled = pods
        .iter()
        .filter(|p| selector_matches(&rs["spec"]["selector"], &p["metadata"]["labels"]))
        .count();
    let mut status = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": labeled,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs["metadata"]["generation"],
    });
    omit_zero(
        &mut status,
        &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
    );
    set_status(c, "apps", "replicasets", rs, status).map(|_| ())
}

/// StatefulSets: pods with stable names and their claims.
pub fn stateful_sets(c: &mut Cluster, scope: &Scope) -> bool {
    let mut failed = false;
    for s in in_scope(c, scope, "apps", "statefulsets", |o| !deleting(o)) {
        failed |= log_err(&format!("statefulset {}", name_of(&s)), stateful_set(c, &s));
    }
    failed
}

fn stateful_set(c: &mut Cluster, s: &Value) -> ApiResult<()> {
    let ns = ns_of(s).unwrap_or("default").to_string();
    let name = name_of(s).to_string();
    let desired = int(&s["spec"]["replicas"], 1).max(0);
    let revision = format!("{name}-{}", stable_hash(&s["spec"]["template"]));
    let parallel = s["spec"]["podManagementPolicy"] == "Parallel";
    let owned_claims = s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete";
    let templates = s["spec"]["volumeClaimTemplates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pods: BTreeMap<i64, Value> = owned_pods(c, &ns, uid_of(s))
        .into_iter()
        .filter_map(|p| {
            let ordinal = name_of(&p)
                .strip_prefix(&format!("{name}-"))
                .and_then(|o| o.parse::<i64>().ok())?;
            Some((ordinal, p))
        })
        .collect();
    // Create missing pods (and their claims) in order.
    for ordinal in 0..desired {
        if let Some(p) = pods.get(&ordinal) {
            if !parallel && !pod_ready(p) {
                break;
            }
            continue;
        }
        let pod_name = format!("{name}-{ordinal}");
        for t in &templates {
            let claim = format!("{}-{pod_name}", name_of(t));
            if get(c, "", "persistentvolumeclaims", Some(&ns), &claim).is_some() {
                continue;
            }
            let mut labels = t["metadata"]["labels"].clone();
            if let Some(ml) = s["spec"]["selector"]["matchLabels"].as_object() {
                for (k, v) in ml {
                    labels[k] = v.clone();
                }
            }
            let mut meta = json!({"name": claim, "labels": labels});
            if t["metadata"]["annotations"].is_object() {
                meta["annotations"] = t["metadata"]["annotations"].clone();
            }
            if owned_claims {
                meta["ownerReferences"] = controller_ref(s);
            }
            let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": t["spec"]});
            create(c, "", "persistentvolumeclaims", Some(&ns), pvc)?;
            event(
                c,
                s,
                "Normal",
                "SuccessfulCreate",
                &format!("create Claim {claim} Pod {pod_name} in StatefulSet {name} success"),
            );
        }
        let extra = json!({
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": ordinal.to_string(),
            "controller-revision-hash": revision,
        });
        let mut pod = pod_from_template(s, &s["spec"]["template"], &extra);
        pod["metadata"]["name"] = json!(pod_name);
        pod["spec"]["hostname"] = json!(pod_name);
        if let Some(svc) = s["spec"]["serviceName"].as_str().filter(|x| !x.is_empty()) {
            pod["spec"]["subdomain"] = json!(svc);
        }
        let mut volumes: Vec<Value> = pod["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for t in &templates {
            let vname = name_of(t);
            volumes.retain(|v| v["name"] != vname);
            volumes.push(json!({"name": vname, "persistentVolumeClaim": {"claimName": format!("{vname}-{pod_name}")}}));
        }
        if !volumes.is_empty() {
            pod["spec"]["volumes"] = json!(volumes);
        }
        let failed =
            |e: &str| format!("create Pod {pod_name} in StatefulSet {name} failed error: {e}");
        create_pod(c, s, &ns, pod, failed)?;
        event(
            c,
            s,
            "Normal",
            "SuccessfulCreate",
            &format!("create Pod {pod_name} in StatefulSet {name} successful"),
        );
        if !parallel {
            break;
        }
    }
    // Scale down from the highest ordinal; roll outdated pods one at a time.
    for (ordinal, p) in pods.iter().rev() {
        if *ordinal >= desired {
            delete(c, "", "pods", p)?;
            event(
                c,
                s,
                "Normal",
                "SuccessfulDelete",
                &format!("delete Pod {} in StatefulSet {name} successful", name_of(p)),
            );
            if !parallel {
                break;
            }
        }
    }
    let all_ready =
        pods.len() as i64 >= desired && pods.range(0..desired).all(|(_, p)| pod_ready(p));
    let on_delete = s["spec"]["updateStrategy"]["type"] == "OnDelete";
    if all_ready && !on_delete {
        let partition = int(
            &s["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
            0,
        );
        if let Some((_, p)) = pods
            .range(partition..desired)
            .rev()
            .find(|(_, p)| p["metadata"]["labels"]["controller-revision-hash"] != revision.as_str())
        {
            delete(c, "", "pods", p)?;
        }
    }
    let pods: Vec<Value> = owned_pods(c, &ns, uid_of(s))
        .into_iter()
        .filter(active)
        .collect();
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i64;
    let updated = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == revision.as_str())
        .count() as i64;
    let current_revision = if updated == pods.len() as i64 {
        revision.clone()
    } else {
        s["status"]["currentRevision"]
            .as_str()
            .unwrap_or(&revision)
            .to_string()
    };
    let current = pods
        .iter()
        .filter(|p| {
            p["metadata"]["labels"]["controller-revision-hash"] == current_revision.as_str()
        })
        .count() as i64;
    let mut status = json!({
        "observedGeneration": s["metadata"]["generation"],
        "replicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    omit_zero(
        &mut status,
        &["readyReplicas", "currentReplicas", "updatedReplicas"],
    );
    set_status(c, "apps", "statefulsets", s, status).map(|_| ())
}

/// Leaves out the `omitempty` counts that are zero, as the API server's JSON does (a
/// Deployment with no ready pod has no `readyReplicas`).
fn omit_zero(status: &mut Value, keys: &[&str]) {
    if let Some(m) = status.as_object_mut() {
        for k in keys {
            if m.get(*k).and_then(Value::as_i64) == Some(0) {
                m.remove(*k);
            }
        }
    }
}

/// Names of the nodes pods may run on (workers when there are some).
pub fn schedulable_nodes(c: &Cluster) -> Vec<Value> {
    let nodes: Vec<Value> = list(c, "", "nodes", None, |n| {
        !n["spec"]["unschedulable"].as_bool().unwrap_or(false) && !deleting(n)
    });
    let workers: Vec<Value> = nodes
        .iter()
        .filter(|n| n["metadata"]["labels"][super::controllers::CONTROL_PLANE_LABEL].is_null())
        .cloned()
        .collect();
    if workers.is_empty() { nodes } else { workers }
}

/// DaemonSets: one pod on each schedulable node its node selector and tolerations admit.
pub fn daemon_sets(c: &mut Cluster, scope: &Scope) -> bool {
    let mut failed = false;
    for ds in in_scope(c, scope, "apps", "daemonsets", |o| !deleting(o)) {
        failed |= log_err(&format!("daemonset {}", name_of(&ds)), daemon_set(c, &ds));
    }
    failed
}

fn daemon_set(c: &mut Cluster, ds: &Value) -> ApiResult<()> {
    let ns = ns_of(ds).unwrap_or("default").to_string();
    let revision = stable_hash(&ds["spec"]["template"]);
    let template = &ds["spec"]["template"]["spec"];
    let selector = &template["nodeSelector"];
    let nodes: Vec<String> = schedulable_nodes(c)
        .iter()
        .filter(|n| {
            selector.as_object().is_none_or(|m| {
                m.iter()
                    .all(|(k, v)| n["metadata"]["labels"].get(k) == Some(v))
            }) && super::scheduler::untolerated_taint(template, n).is_none()
        })
        .map(|n| name_of(n).to_string())
        .collect();
    let pods: Vec<Value> = owned_pods(c, &ns, uid_of(ds))
        .into_iter()
        .filter(active)
        .collect();
    let mut covered = HashSet::new();
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().unwrap_or("").to_string();
        let outdated = p["metadata"]["labels"]["controller-revision-hash"] != revision.as_str();
        if !nodes.contains(&node) || outdated || !covered.insert(node) {
            delete(c, "", "pods", p)?;
        }
    }
    for node in &nodes {
        if covered.contains(node) {
            continue;
        }
        let extra = json!({"controller-revision-hash": revision, "pod-template-generation": ds["metadata"]["generation"].as_i64().unwrap_or(1).to_string()});
        let mut pod = pod_from_template(ds, &ds["spec"]["template"], &extra);
        pod["metadata"]["generateName"] = json!(format!("{}-", name_of(ds)));
        pod["spec"]["nodeName"] = json!(node);
        let pod = create_pod(c, ds, &ns, pod, |e| format!("Error creating: {e}"))?;
        event(
            c,
            ds,
            "Normal",
            "SuccessfulCreate",
            &format!("Created pod: {}", name_of(&pod)),
        );
    }
    let pods: Vec<Value> = owned_pods(c, &ns, uid_of(ds))
        .into_iter()
        .filter(active)
        .collect();
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == revision.as_str())
        .count();
    let status = json!({
        "observedGeneration": ds["metadata"]["generation"],
        "desiredNumberScheduled": nodes.len(),
        "currentNumberScheduled": pods.len(),
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": updated,
    });
    set_status(c, "apps", "daemonsets", ds, status).map(|_| ())
}

/// Creates a pod of the controller `owner`. A pod the API server refuses (Pod Security,
/// a missing service account, a name taken) is, as a real controller reports it, a
/// `FailedCreate` warning on the owner (`failed` words it from the refusal; recorded
/// once while the owner keeps failing, so a controller retrying every pass does not
/// flood the namespace), and the refusal is returned: the controller counts as failed
/// and runs again at the next tick, so the pod comes once what refused it is gone.
fn create_pod(
    c: &mut Cluster,
    owner: &Value,
    ns: &str,
    pod: Value,
    failed: impl FnOnce(&str) -> String,
) -> ApiResult<Value> {
    create(c, "", "pods", Some(ns), pod).inspect_err(|e| {
        if !(400..500).contains(&e.code) {
            return;
        }
        let uid = uid_of(owner);
        let told = c
            .store
            .list("", "events", Some(ns))
            .any(|(_, ev)| ev["involvedObject"]["uid"] == uid && ev["reason"] == "FailedCreate");
        if !told {
            event(c, owner, "Warning", "FailedCreate", &failed(&e.message));
        }
    })
}

/// Jobs: pods until enough have succeeded.
pub fn jobs(c: &mut Cluster, scope: &Scope) -> bool {
    let mut failed = false;
    for j in in_scope(c, scope, "batch", "jobs", |o| !deleting(o)) {
        failed |= log_err(&format!("job {}", name_of(&j)), job(c, &j));
    }
    failed
}

fn job(c: &mut Cluster, j: &Value) -> ApiResult<()> {
    let ns = ns_of(j).unwrap_or("default").to_string();
    let uid = uid_of(j).to_string();
    let completions = int(&j["spec"]["completions"], 1);
    let parallelism = int(&j["spec"]["parallelism"], 1);
    let suspended = j["spec"]["suspend"].as_bool().unwrap_or(false);
    let pods = owned_pods(c, &ns, &uid);
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let running = pods.iter().filter(|p| active(p)).count() as i64;
    let done = succeeded >= completions;
    // More failed pods than `backoffLimit` allows: the Job fails, and what still runs
    // is stopped.
    let backoff_limit = int(&j["spec"]["backoffLimit"], 6);
    let gave_up = !done && (failed > backoff_limit || is_failed(j));
    if gave_up {
        for p in pods.iter().filter(|p| active(p)) {
            delete(c, "", "pods", p)?;
        }
    }
    if !done && !suspended && !gave_up {
        let want = parallelism.min(completions - succeeded) - running;
        for _ in 0..want.max(0) {
            let extra = json!({
                "batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                "batch.kubernetes.io/job-name": name_of(j), "job-name": name_of(j),
            });
            let mut pod = pod_from_template(j, &j["spec"]["template"], &extra);
            pod["metadata"]["generateName"] = json!(format!("{}-", name_of(j)));
            let pod = create_pod(c, j, &ns, pod, |e| format!("Error creating: {e}"))?;
            event(
                c,
                j,
                "Normal",
                "SuccessfulCreate",
                &format!("Created pod: {}", name_of(&pod)),
            );
        }
    }
    let pods = owned_pods(c, &ns, &uid);
    let old = &j["status"];
    let mut status = json!({
        "startTime": old["startTime"].as_str().map_or_else(now, str::to_string),
        "active": pods.iter().filter(|p| active(p)).count(),
        "ready": pods.iter().filter(|p| pod_ready(p)).count(),
        "succeeded": succeeded,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    if failed > 0 {
        status["failed"] = json!(failed);
    }
    if done {
        let completed = old["completionTime"]
            .as_str()
            .map_or_else(now, str::to_string);
        let conds = &old["conditions"];
        status["completionTime"] = json!(completed);
        status["active"] = json!(0);
        status["conditions"] = json!([
            condition(
                conds,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                false
            ),
            condition(
                conds,
                "Complete",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                false
            ),
        ]);
        for cond in status
            .get_mut("conditions")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            cond["lastProbeTime"] = cond["lastTransitionTime"].clone();
        }
        if old["completionTime"].is_null() {
            event(c, j, "Normal", "Completed", "Job completed");
        }
    } else if gave_up {
        let conds = &old["conditions"];
        let message = "Job has reached the specified backoff limit";
        status["active"] = json!(0);
        status["conditions"] = json!([
            condition(
                conds,
                "FailureTarget",
                "True",
                "BackoffLimitExceeded",
                message,
                false
            ),
            condition(
                conds,
                "Failed",
                "True",
                "BackoffLimitExceeded",
                message,
                false
            ),
        ]);
        if !is_failed(j) {
            event(c, j, "Warning", "BackoffLimitExceeded", message);
        }
    } else if suspended {
        status["conditions"] = json!([condition(
            &old["conditions"],
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
            false
        )]);
    }
    set_status(c, "batch", "jobs", j, status).map(|_| ())
}

/// Whether the Job has the condition `Failed`: it gave up for good.
fn is_failed(j: &Value) -> bool {
    j["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Failed" && c["status"] == "True")
    })
}

/// CronJobs: a Job for each due time of the schedule, history limits, status.
pub fn cron_jobs(c: &mut Cluster, scope: &Scope) -> bool {
    let mut failed = false;
    for cj in in_scope(c, scope, "batch", "cronjobs", |o| !deleting(o)) {
        failed |= log_err(&format!("cronjob {}", name_of(&cj)), cron_job(c, &cj));
    }
    failed
}

fn cron_job(c: &mut Cluster, cj: &Value) -> ApiResult<()> {
    let ns = ns_of(cj).unwrap_or("default").to_string();
    let uid = uid_of(cj).to_string();
    let mut jobs: Vec<Value> = list(c, "batch", "jobs", Some(&ns), |j| controlled_by(j, &uid));
    jobs.sort_by(|a, b| {
        a["metadata"]["creationTimestamp"]
            .as_str()
            .cmp(&b["metadata"]["creationTimestamp"].as_str())
    });
    let finished = |j: &Value| j["status"]["completionTime"].is_string();
    let active: Vec<&Value> = jobs.iter().filter(|j| !finished(j)).collect();
    let mut status = json!({});
    let now_t = chrono::Utc::now();
    let last = cj["status"]["lastScheduleTime"]
        .as_str()
        .or(cj["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let schedule = cj["spec"]["schedule"].as_str().unwrap_or("");
    let suspended = cj["spec"]["suspend"].as_bool().unwrap_or(false);
    let due = match (last, Schedule::parse(schedule)) {
        (Some(last), Some(s)) if !suspended => s.latest_between(last, now_t),
        _ => None,
    };
    if let Some(t) = due {
        let forbid = cj["spec"]["concurrencyPolicy"] == "Forbid";
        if !forbid || active.is_empty() {
            let minutes = t.timestamp() / 60;
            let job_name = format!("{}-{minutes}", name_of(cj));
            if get(c, "batch", "jobs", Some(&ns), &job_name).is_none() {
                let tmpl = &cj["spec"]["jobTemplate"];
                let mut meta = tmpl["metadata"].clone();
                if !meta.is_object() {
                    meta = json!({});
                }
                meta["name"] = json!(job_name);
                meta["ownerReferences"] = controller_ref(cj);
                meta["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] =
                    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": tmpl["spec"]});
                create(c, "batch", "jobs", Some(&ns), job)?;
                event(
                    c,
                    cj,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created job {job_name}"),
                );
            }
            status["lastScheduleTime"] =
                json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    } else if cj["status"]["lastScheduleTime"].is_string() {
        status["lastScheduleTime"] = cj["status"]["lastScheduleTime"].clone();
    }
    // History: keep the newest successful and failed jobs within the limits.
    let keep_ok = int(&cj["spec"]["successfulJobsHistoryLimit"], 3).max(0) as usize;
    let done: Vec<&Value> = jobs.iter().filter(|j| finished(j)).collect();
    if done.len() > keep_ok {
        for j in &done[..done.len() - keep_ok] {
            delete(c, "batch", "jobs", j)?;
        }
    }
    if let Some(j) = done.last() {
        status["lastSuccessfulTime"] = j["status"]["completionTime"].clone();
    }
    let refs: Vec<Value> = c
        .store
        .list("batch", "jobs", Some(&ns))
        .map(|(_, j)| j)
        .filter(|j| controlled_by(j, &uid) && !finished(j))
        .map(|j| json!({"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"], "namespace": ns, "uid": j["metadata"]["uid"], "resourceVersion": j["metadata"]["resourceVersion"]}))
        .collect();
    if !refs.is_empty() {
        status["active"] = json!(refs);
    }
    set_status(c, "batch", "cronjobs", cj, status).map(|_| ())
}

/// A five-field cron schedule (minute hour day-of-month month day-of-week), evaluated in
/// UTC; `@hourly`, `@daily` and friends too.
struct Schedule {
    fields: [Vec<bool>; 5],
}

impl Schedule {
    fn parse(s: &str) -> Option<Schedule> {
        let s = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() != 5 {
            return None;
        }
        let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
        let mut fields: [Vec<bool>; 5] = Default::default();
        for (i, (part, (lo, hi))) in parts.iter().zip(ranges).enumerate() {
            let mut set = vec![false; hi + 1];
            for item in part.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => (r, s.parse::<usize>().ok().filter(|s| *s > 0)?),
                    None => (item, 1),
                };
                let (a, b) = if range == "*" || range == "?" {
                    (lo, hi)
                } else if let Some((a, b)) = range.split_once('-') {
                    (a.parse().ok()?, b.parse().ok()?)
                } else {
                    let a: usize = range.parse().ok()?;
                    (a, if item.contains('/') { hi } else { a })
                };
                if a < lo || b > hi || a > b {
                    return None;
                }
                for x in (a..=b).step_by(step) {
                    set[x] = true;
                }
            }
            fields[i] = set;
        }
        if fields[4][7] {
            fields[4][0] = true;
        }
        Some(Schedule { fields })
    }

    fn matches(&self, t: chrono::DateTime<chrono::Utc>) -> bool {
        use chrono::{Datelike as _, Timelike as _};
        let f = &self.fields;
        f[0][t.minute() as usize]
            && f[1][t.hour() as usize]
            && f[2][t.day() as usize]
            && f[3][t.month() as usize]
            && f[4][t.weekday().num_days_from_sunday() as usize]
    }

    /// The latest due minute in (after, until], looking back at most a day.
    fn latest_between(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        use chrono::Timelike as _;
        let mut t = until.with_second(0)?.with_nanosecond(0)?;
        let floor = after.max(until - chrono::Duration::days(1));
        while t > floor {
            if self.matches(t) {
                return Some(t);
            }
            t -= chrono::Duration::minutes(1);
        }
        None
    }
}

/// Sets `v[key]` to `default` when `v` is an object without it.
fn default_to(v: &mut Value, key: &str, default: Value) {
    if let Some(m) = v.as_object_mut() {
        m.entry(key.to_string()).or_insert(default);
    }
}

/// The defaults the API server fills in on every write of a workload, pod or volume, so
/// that clients (`kubectl rollout status`, Ferry's own cleanup of defaulted fields) see
/// what a real cluster returns.
pub fn default_fields(group: &str, plural: &str, obj: &mut Value) {
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    match (group, plural) {
        ("", "pods") => {
            default_to(spec, "serviceAccountName", json!("default"));
            let sa = spec["serviceAccountName"].clone();
            default_to(spec, "serviceAccount", sa);
            default_to(spec, "enableServiceLinks", json!(true));
            default_to(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            default_to(spec, "priority", json!(0));
            default_pod_spec(spec);
        }
        ("apps", "deployments") => {
            default_to(spec, "revisionHistoryLimit", json!(10));
            default_to(spec, "progressDeadlineSeconds", json!(600));
            default_to(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"].is_null() {
                spec["strategy"]["type"] = json!("RollingUpdate");
            }
            if spec["strategy"]["type"] == "RollingUpdate" {
                default_to(&mut spec["strategy"], "rollingUpdate", json!({}));
                let ru = &mut spec["strategy"]["rollingUpdate"];
                default_to(ru, "maxUnavailable", json!("25%"));
                default_to(ru, "maxSurge", json!("25%"));
            }
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "replicasets") => default_pod_spec(&mut spec["template"]["spec"]),
        ("apps", "statefulsets") => {
            default_to(spec, "podManagementPolicy", json!("OrderedReady"));
            default_to(spec, "revisionHistoryLimit", json!(10));
            default_to(spec, "updateStrategy", json!({"type": "RollingUpdate"}));
            if spec["updateStrategy"]["type"].is_null() {
                spec["updateStrategy"]["type"] = json!("RollingUpdate");
            }
            if spec["updateStrategy"]["type"] == "RollingUpdate" {
                default_to(&mut spec["updateStrategy"], "rollingUpdate", json!({}));
                default_to(
                    &mut spec["updateStrategy"]["rollingUpdate"],
                    "partition",
                    json!(0),
                );
            }
            default_to(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            for t in spec["volumeClaimTemplates"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                default_to(&mut t["spec"], "volumeMode", json!("Filesystem"));
            }
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "daemonsets") => {
            default_to(spec, "revisionHistoryLimit", json!(10));
            default_to(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("batch", "jobs") => {
            default_job_spec(spec, &uid, &name);
        }
        ("batch", "cronjobs") => {
            default_to(spec, "concurrencyPolicy", json!("Allow"));
            default_to(spec, "suspend", json!(false));
            default_to(spec, "successfulJobsHistoryLimit", json!(3));
            default_to(spec, "failedJobsHistoryLimit", json!(1));
            let job = &mut spec["jobTemplate"]["spec"];
            if job.is_object() {
                default_job_spec(job, "", "");
            }
        }
        ("", "persistentvolumeclaims") => default_to(spec, "volumeMode", json!("Filesystem")),
        ("", "persistentvolumes") => {
            default_to(spec, "volumeMode", json!("Filesystem"));
            default_to(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        }
        _ => {}
    }
}

/// Job defaults; with the Job's `uid` (not for a CronJob's template) also the selector
/// and template labels the API server generates.
fn default_job_spec(spec: &mut Value, uid: &str, name: &str) {
    let completions_unset = spec["completions"].is_null() && spec["parallelism"].is_null();
    default_to(spec, "parallelism", json!(1));
    if completions_unset {
        spec["completions"] = json!(1);
    }
    default_to(spec, "backoffLimit", json!(6));
    default_to(spec, "completionMode", json!("NonIndexed"));
    default_to(spec, "suspend", json!(false));
    default_to(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    let manual = spec["manualSelector"].as_bool().unwrap_or(false);
    if !uid.is_empty() && !manual && spec["selector"].is_null() {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = &mut spec["template"]["metadata"]["labels"];
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", uid),
            ("controller-uid", uid),
            ("batch.kubernetes.io/job-name", name),
            ("job-name", name),
        ] {
            labels[k] = json!(v);
        }
    }
    default_pod_spec(&mut spec["template"]["spec"]);
}

/// Pod spec defaults, for pods and pod templates.
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_to(spec, "restartPolicy", json!("Always"));
    default_to(spec, "dnsPolicy", json!("ClusterFirst"));
    default_to(spec, "terminationGracePeriodSeconds", json!(30));
    default_to(spec, "schedulerName", json!("default-scheduler"));
    default_to(spec, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        for ctr in spec
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let image = ctr["image"].as_str().unwrap_or("");
            let last = image.rsplit('/').next().unwrap_or(image);
            let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
            default_to(
                ctr,
                "imagePullPolicy",
                json!(if latest { "Always" } else { "IfNotPresent" }),
            );
            default_to(ctr, "terminationMessagePath", json!("/dev/termination-log"));
            default_to(ctr, "terminationMessagePolicy", json!("File"));
            default_to(ctr, "resources", json!({}));
            for port in ctr
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                default_to(port, "protocol", json!("TCP"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_schedules() {
        let s = Schedule::parse("*/15 2 * * 1-5").unwrap();
        let t = |x: &str| {
            chrono::DateTime::parse_from_rfc3339(x)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        // 2026-11-23 is a Monday.
        assert!(s.matches(t("2026-11-23T02:30:00Z")));
        assert!(!s.matches(t("2026-11-23T02:31:00Z")));
        assert!(!s.matches(t("2026-11-22T02:30:00Z")));
        assert_eq!(
            s.latest_between(t("2026-11-23T02:00:00Z"), t("2026-11-23T02:20:10Z")),
            Some(t("2026-11-23T02:15:00Z"))
        );
        assert!(Schedule::parse("61 * * * *").is_none());
        assert!(Schedule::parse("@hourly").is_some());
        assert_eq!(int_or_percent(&json!("25%"), 4, 25, false), 1);
        assert_eq!(int_or_percent(&json!(2), 4, 25, false), 2);
    }

    #[test]
    fn defaults_are_filled_and_kept() {
        let mut sts = json!({"metadata": {"name": "db", "uid": "u"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "pg:16", "ports": [{"containerPort": 5432}]}]}}}});
        default_fields("apps", "statefulsets", &mut sts);
        assert_eq!(sts["spec"]["updateStrategy"]["type"], "RollingUpdate");
        let ctr = &sts["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(ctr["imagePullPolicy"], "IfNotPresent");
        assert_eq!(ctr["ports"][0]["protocol"], "TCP");
        let once = sts.clone();
        default_fields("apps", "statefulsets", &mut sts);
        assert_eq!(sts, once);
        let mut job = json!({"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        default_fields("batch", "jobs", &mut job);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u1"
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["job-name"],
            "j"
        );
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }
}

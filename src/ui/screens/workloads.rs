//! Workloads of a namespace (with what each depends on, from the dependency closure)
//! and its claims (with the pods that use them).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::app::{NsData, Row, Tone};
use crate::format;
use ferry_k8s::graph;
use ferry_k8s::objects::ObjRef;

/// The key of an object's row: `Kind/name`.
pub fn object_key(o: &Value) -> String {
    let r = ObjRef::of(o);
    format!("{}/{}", r.kind, r.name)
}

fn ready(o: &Value, kind: &str) -> String {
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => format!(
            "{}/{}",
            o["status"]["readyReplicas"].as_u64().unwrap_or(0),
            o["spec"]["replicas"].as_u64().unwrap_or(1)
        ),
        "DaemonSet" => format!(
            "{}/{}",
            o["status"]["numberReady"].as_u64().unwrap_or(0),
            o["status"]["desiredNumberScheduled"].as_u64().unwrap_or(0)
        ),
        "Job" => format!("{} done", o["status"]["succeeded"].as_u64().unwrap_or(0)),
        "Pod" => o["status"]["phase"].as_str().unwrap_or("-").to_string(),
        _ => "-".into(),
    }
}

fn age(o: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            format::duration(
                (now - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| "-".into())
}

/// Rows for a namespace's objects.
pub fn ns_data(objects: Vec<Value>) -> NsData {
    let now = chrono::Utc::now();
    let mut index = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        index.insert(object_key(o), i);
    }
    let mut workload_rows = Vec::new();
    for o in objects
        .iter()
        .filter(|o| graph::is_workload(&ObjRef::of(o)) && graph::controller_owner(o).is_none())
    {
        let r = ObjRef::of(o);
        let deps = graph::closure(&objects, std::slice::from_ref(&r));
        let mut by_kind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in deps.iter().filter(|d| **d != r) {
            if matches!(
                d.kind.as_str(),
                "PersistentVolumeClaim" | "ConfigMap" | "Secret" | "Service" | "ServiceAccount"
            ) {
                by_kind.entry(d.kind.as_str()).or_default().push(&d.name);
            }
        }
        let deps_text = by_kind
            .iter()
            .map(|(k, v)| {
                let short = match *k {
                    "PersistentVolumeClaim" => "pvc",
                    "ConfigMap" => "cm",
                    "Secret" => "secret",
                    "Service" => "svc",
                    _ => "sa",
                };
                format!("{short}:{}", v.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let rd = ready(o, &r.kind);
        let tone = match rd.split_once('/') {
            Some((a, b)) if a != b => Tone::Warn,
            _ => Tone::Normal,
        };
        workload_rows.push(
            Row::new(
                format!("{}/{}", r.kind, r.name),
                vec![
                    r.kind.clone(),
                    r.name.clone(),
                    rd,
                    graph::pod_spec(o)
                        .and_then(|s| s["containers"][0]["image"].as_str())
                        .unwrap_or("-")
                        .to_string(),
                    age(o, now),
                    if deps_text.is_empty() {
                        "-".into()
                    } else {
                        deps_text
                    },
                ],
            )
            .tone(tone),
        );
    }
    let pods: Vec<&Value> = objects
        .iter()
        .filter(|o| ObjRef::of(o).is("", "Pod"))
        .collect();
    let mut pvc_rows = Vec::new();
    for c in objects
        .iter()
        .filter(|o| ObjRef::of(o).is("", "PersistentVolumeClaim"))
    {
        let name = c["metadata"]["name"].as_str().unwrap_or_default();
        let users: Vec<&str> = pods
            .iter()
            .filter(|p| {
                p["spec"]["volumes"].as_array().is_some_and(|vs| {
                    vs.iter()
                        .any(|v| v["persistentVolumeClaim"]["claimName"].as_str() == Some(name))
                })
            })
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        let phase = c["status"]["phase"].as_str().unwrap_or("-").to_string();
        let tone = if phase == "Bound" {
            Tone::Normal
        } else {
            Tone::Warn
        };
        let access = c["spec"]["accessModes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        pvc_rows.push(
            Row::new(
                format!("PersistentVolumeClaim/{name}"),
                vec![
                    name.to_string(),
                    phase,
                    c["spec"]["resources"]["requests"]["storage"]
                        .as_str()
                        .unwrap_or("-")
                        .to_string(),
                    c["spec"]["storageClassName"]
                        .as_str()
                        .unwrap_or("-")
                        .to_string(),
                    access,
                    c["spec"]["volumeName"].as_str().unwrap_or("-").to_string(),
                    if users.is_empty() {
                        "-".into()
                    } else {
                        users.join(",")
                    },
                ],
            )
            .tone(tone),
        );
    }
    NsData {
        objects,
        workload_rows,
        pvc_rows,
        index,
    }
}

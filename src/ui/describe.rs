//! `D`: an object described in words, as `kubectl describe` does, plus what Ferry
//! knows that kubectl does not: what a backup or clone of it takes along (and why), and
//! what refers to it. Shown in the full-screen view of [`crate::yaml`] (scrolling and
//! `/` search); drawn from the objects already listed, so it never waits.

use ferry_k8s::ObjRef;
use ferry_k8s::graph;
use serde_json::Value;

fn pairs(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(&v.to_string())))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".into(),
    }
}

fn field(out: &mut Vec<String>, name: &str, value: impl std::fmt::Display) {
    out.push(format!("{:<13} {value}", format!("{name}:")));
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The lines describing `obj`, among the objects `all` of its namespace (or capture).
pub fn describe(obj: &Value, all: &[Value]) -> Vec<String> {
    let me = ObjRef::of(obj);
    let meta = &obj["metadata"];
    let mut out = Vec::new();
    field(&mut out, "Name", &me.name);
    if let Some(ns) = &me.namespace {
        field(&mut out, "Namespace", ns);
    }
    field(
        &mut out,
        "Kind",
        format!(
            "{} ({})",
            me.kind,
            obj["apiVersion"].as_str().unwrap_or("?")
        ),
    );
    field(
        &mut out,
        "Created",
        meta["creationTimestamp"].as_str().unwrap_or("-"),
    );
    field(&mut out, "Labels", pairs(&meta["labels"]));
    let annotations = meta["annotations"].as_object().map_or(0, |m| m.len());
    field(
        &mut out,
        "Annotations",
        if annotations == 0 {
            "-".to_string()
        } else {
            format!("{annotations} (y shows them)")
        },
    );
    if let Some(owners) = meta["ownerReferences"].as_array() {
        let o: Vec<String> = owners
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or("?"),
                    o["name"].as_str().unwrap_or("?")
                )
            })
            .collect();
        field(&mut out, "Owned by", o.join(", "));
    }
    kind_lines(&mut out, obj, &me);
    if let Some(spec) = graph::pod_spec(obj) {
        containers(&mut out, spec, &obj["status"]);
    }
    if let Some(conds) = obj["status"]["conditions"].as_array() {
        out.push("Conditions:".into());
        for c in conds {
            let why = c["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            out.push(format!(
                "  {} {}{why}",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?")
            ));
        }
    }
    // What a backup, clone or migration of this object alone takes along.
    let closure = graph::closure(all, std::slice::from_ref(&me));
    let along: Vec<String> = closure
        .iter()
        .filter(|(r, _)| **r != me)
        .map(|(r, why)| format!("  {}/{} ({why})", r.kind, r.name))
        .collect();
    out.push(if along.is_empty() {
        "Moves with it: nothing else (a backup of it alone takes only it)".into()
    } else {
        format!("Moves with it ({}):", along.len())
    });
    out.extend(along);
    let users: Vec<String> = all
        .iter()
        .filter(|o| graph::references(o).contains(&me))
        .map(|o| {
            let r = ObjRef::of(o);
            format!("  {}/{}", r.kind, r.name)
        })
        .collect();
    if !users.is_empty() {
        out.push(format!("Referred to by ({}):", users.len()));
        out.extend(users);
    }
    out
}

fn kind_lines(out: &mut Vec<String>, obj: &Value, me: &ObjRef) {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    match me.kind.as_str() {
        "Deployment" | "StatefulSet" | "ReplicaSet" => {
            field(
                out,
                "Replicas",
                format!(
                    "{} desired · {} ready · {} updated · {} available",
                    spec["replicas"].as_u64().unwrap_or(1),
                    num(&status["readyReplicas"]),
                    num(&status["updatedReplicas"]),
                    num(&status["availableReplicas"])
                ),
            );
            field(out, "Selector", pairs(&spec["selector"]["matchLabels"]));
            if let Some(s) = spec["strategy"]["type"]
                .as_str()
                .or(spec["updateStrategy"]["type"].as_str())
            {
                field(out, "Strategy", s);
            }
            if let Some(templates) = spec["volumeClaimTemplates"].as_array() {
                for t in templates {
                    field(
                        out,
                        "Claim tmpl",
                        format!(
                            "{} · {} · {}",
                            t["metadata"]["name"].as_str().unwrap_or("?"),
                            t["spec"]["storageClassName"]
                                .as_str()
                                .unwrap_or("default class"),
                            t["spec"]["resources"]["requests"]["storage"]
                                .as_str()
                                .unwrap_or("?")
                        ),
                    );
                }
            }
        }
        "DaemonSet" => field(
            out,
            "Pods",
            format!(
                "{} desired · {} ready",
                num(&status["desiredNumberScheduled"]),
                num(&status["numberReady"])
            ),
        ),
        "Pod" => {
            field(out, "Status", status["phase"].as_str().unwrap_or("-"));
            field(out, "Node", spec["nodeName"].as_str().unwrap_or("-"));
            field(out, "IP", status["podIP"].as_str().unwrap_or("-"));
        }
        "PersistentVolumeClaim" => {
            field(out, "Status", status["phase"].as_str().unwrap_or("-"));
            field(
                out,
                "Class",
                spec["storageClassName"].as_str().unwrap_or("(default)"),
            );
            field(
                out,
                "Requested",
                spec["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap_or("-"),
            );
            field(
                out,
                "Capacity",
                status["capacity"]["storage"].as_str().unwrap_or("-"),
            );
            let modes: Vec<&str> = spec["accessModes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            field(out, "Access", modes.join(", "));
            field(out, "Volume", spec["volumeName"].as_str().unwrap_or("-"));
        }
        "Service" => {
            field(out, "Type", spec["type"].as_str().unwrap_or("ClusterIP"));
            field(out, "Selector", pairs(&spec["selector"]));
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{} → {}",
                        p["port"],
                        p["protocol"].as_str().unwrap_or("TCP"),
                        p["targetPort"]
                    )
                })
                .collect();
            field(out, "Ports", ports.join(", "));
        }
        "ConfigMap" | "Secret" => {
            let keys: Vec<&str> = ["data", "stringData", "binaryData"]
                .iter()
                .filter_map(|f| obj[*f].as_object())
                .flat_map(|m| m.keys().map(String::as_str))
                .collect();
            field(
                out,
                "Keys",
                if keys.is_empty() {
                    "-".into()
                } else {
                    keys.join(", ")
                },
            );
            if me.kind == "Secret" {
                field(out, "Type", obj["type"].as_str().unwrap_or("Opaque"));
            }
        }
        _ => {}
    }
}

fn containers(out: &mut Vec<String>, spec: &Value, status: &Value) {
    out.push("Containers:".into());
    for c in spec["containers"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        out.push(format!("  {name}:"));
        out.push(format!(
            "    Image:     {}",
            c["image"].as_str().unwrap_or("-")
        ));
        let ports: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["containerPort"],
                    p["protocol"].as_str().unwrap_or("TCP")
                )
            })
            .collect();
        if !ports.is_empty() {
            out.push(format!("    Ports:     {}", ports.join(", ")));
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            if let Some(n) = e["configMapRef"]["name"].as_str() {
                out.push(format!("    Env from:  ConfigMap {n}"));
            }
            if let Some(n) = e["secretRef"]["name"].as_str() {
                out.push(format!("    Env from:  Secret {n}"));
            }
        }
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            out.push(format!(
                "    Mount:     {} ← {}{}",
                m["mountPath"].as_str().unwrap_or("?"),
                m["name"].as_str().unwrap_or("?"),
                if m["readOnly"].as_bool() == Some(true) {
                    " (read-only)"
                } else {
                    ""
                }
            ));
        }
        if let Some(s) = status["containerStatuses"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"].as_str() == Some(name)))
        {
            let state = s["state"]
                .as_object()
                .and_then(|m| m.iter().next())
                .map(|(k, v)| match v["reason"].as_str() {
                    Some(r) => format!("{k} ({r})"),
                    None => k.clone(),
                })
                .unwrap_or_else(|| "-".into());
            out.push(format!(
                "    State:     {state} · ready {} · {} restart(s)",
                s["ready"].as_bool().unwrap_or(false),
                num(&s["restartCount"])
            ));
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("?");
        let what = v
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| *k != "name"))
            .map(|(k, src)| {
                let target = src["claimName"]
                    .as_str()
                    .or(src["name"].as_str())
                    .or(src["secretName"].as_str())
                    .unwrap_or("");
                format!("{k} {target}").trim_end().to_string()
            })
            .unwrap_or_default();
        out.push(format!("  volume {name}: {what}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_says_what_moves_with_it_and_why() {
        let all = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                  "envFrom": [{"configMapRef": {"name": "web-config"}}],
                                                  "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                                                  "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}},
                   "status": {"readyReplicas": 1}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "web-config", "namespace": "shop"}, "data": {"mode": "prod"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "data", "namespace": "shop"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ];
        let lines = describe(&all[0], &all);
        let text = lines.join("\n");
        for want in [
            "Name:         web",
            "Labels:       app=web",
            "Replicas:     2 desired · 1 ready · 0 updated · 0 available",
            "    Image:     nginx:1.27",
            "    Env from:  ConfigMap web-config",
            "    Mount:     /data ← data",
            "  volume data: persistentVolumeClaim data",
            "Moves with it (2):",
            "  ConfigMap/web-config (",
            "  PersistentVolumeClaim/data (",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        // The claim: who uses it.
        let claim = describe(&all[2], &all).join("\n");
        assert!(claim.contains("Access:       ReadWriteOnce"), "{claim}");
        assert!(
            claim.contains("Referred to by (1):\n  Deployment/web"),
            "{claim}"
        );
    }
}

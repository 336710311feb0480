//! Pods as a kubelet would leave them once scheduled (`scheduler.rs` places them), and
//! Endpoints that follow them.
//!
//! - Running: a scheduled pod whose claims are bound gets an IP from its node's pod
//!   CIDR and phase Running. A pod with containers of images the sandbox holds is then
//!   the kubelet's (`kubelet.rs`): it runs them and reports them. Other pods are
//!   emulated: the four conditions and container statuses a kubelet reports, and the
//!   `sandbox.ferry.dev/Emulated` condition; those of a Job whose `restartPolicy` is
//!   Never or OnFailure are Succeeded a moment after they start.
//! - Endpoints: for each Service with a selector, the ready (and not ready) addresses of
//!   the pods it selects, with resolved target ports.
//!
//! Owns pod status and the Endpoints of selector Services. Must not create or delete
//! pods: the workload controllers do.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::changes::Scope;
use super::controllers::{
    age_seconds, condition, create, delete, deleting, event, get, in_scope, log_err, name_of,
    ns_of, set_status, uid_of, update,
};
use super::kubelet;
use super::scheduler::{is_bound, storage_class};
use super::verbs::{ApiResult, Cluster, now};
use super::workloads::pod_ready;

/// The claim names a pod's volumes use.
pub fn claim_names(pod: &Value) -> Vec<String> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .map(str::to_string)
        .collect()
}

/// `docker.io/library/nginx:latest` for `nginx`, as container runtimes report images.
fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let name = if digest.is_none() && !last.contains(':') {
        format!("{name}:latest")
    } else {
        name.to_string()
    };
    let first = name.split('/').next().unwrap_or("");
    let qualified = if !name.contains('/') {
        format!("docker.io/library/{name}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        name
    } else {
        format!("docker.io/{name}")
    };
    match digest {
        Some(d) => format!("{qualified}@{d}"),
        None => qualified,
    }
}

fn container_statuses(pod: &Value, key: &str, started_at: &str, state: &str) -> Value {
    let uid = uid_of(pod);
    let list: Vec<Value> = pod["spec"][key]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ctr| {
            let name = ctr["name"].as_str().unwrap_or("");
            let image = normalize_image(ctr["image"].as_str().unwrap_or(""));
            let repo = image.split('@').next().unwrap_or("").rsplit_once(':').map_or(image.as_str(), |(r, _)| r).to_string();
            let id = blake3::hash(format!("{uid}/{name}").as_bytes()).to_hex().to_string();
            let digest = blake3::hash(image.as_bytes()).to_hex().to_string();
            let container_id = format!("containerd://{id}");
            let (ready, started, st) = match state {
                "running" => (true, true, json!({"running": {"startedAt": started_at}})),
                "waiting" => (false, false, json!({"waiting": {"reason": "ContainerCreating"}})),
                _ => (false, false, json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started_at, "finishedAt": state.strip_prefix("done:").unwrap_or(started_at), "containerID": container_id}})),
            };
            let mut s = json!({
                "name": name, "image": image, "imageID": format!("{repo}@sha256:{digest}"),
                "ready": ready, "started": started, "restartCount": 0, "state": st, "lastState": {},
            });
            if state != "waiting" {
                s["containerID"] = json!(container_id);
            }
            s
        })
        .collect();
    json!(list)
}

/// The condition of a pod whose containers are emulated (no image the sandbox holds).
fn emulated(old: &Value) -> Value {
    condition(
        old,
        kubelet::EMULATED,
        "True",
        "ImageNotHeld",
        "the sandbox holds none of this pod's images: it reports the containers running without running them",
        false,
    )
}

/// Whether the pod belongs to a Job and runs to completion.
fn runs_to_completion(pod: &Value) -> bool {
    let owned_by_job = pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|r| r.iter().any(|o| o["kind"] == "Job"));
    owned_by_job
        && matches!(
            pod["spec"]["restartPolicy"].as_str(),
            Some("Never" | "OnFailure")
        )
}

/// The kubelet: scheduled pods within `scope` start (once their volumes are bound) and
/// Job pods finish. Returns whether it failed on one.
pub fn run(c: &mut Cluster, scope: &Scope) -> bool {
    // Running pods stay Running (as with a kubelet, a claim deleted under a running pod
    // does not stop it); only pods that start or finish need a look.
    let pods = in_scope(c, scope, "", "pods", |p| {
        let phase = p["status"]["phase"].as_str();
        !deleting(p)
            && p["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            && !matches!(phase, Some("Succeeded" | "Failed"))
            && !kubelet::owns(p)
            && (phase != Some("Running") || runs_to_completion(p))
    });
    if pods.is_empty() {
        return false;
    }
    let mut used: HashSet<String> = c
        .store
        .list("", "pods", None)
        .filter_map(|(_, p)| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    let mut failed = false;
    for pod in pods {
        failed |= log_err(
            &format!("running pod {}", name_of(&pod)),
            run_one(c, &pod, &mut used),
        );
    }
    failed
}

fn pod_ip(node: &Value, used: &mut HashSet<String>) -> String {
    let cidr = node["spec"]["podCIDR"].as_str().unwrap_or("10.244.0.0/24");
    let prefix = cidr.split('/').next().unwrap_or("10.244.0.0");
    let base: Vec<&str> = prefix.split('.').collect();
    let net = base
        .get(..3)
        .map(|b| b.join("."))
        .unwrap_or_else(|| "10.244.0".into());
    for host in 2..255 {
        let ip = format!("{net}.{host}");
        if used.insert(ip.clone()) {
            return ip;
        }
    }
    // A full /24: share the last address rather than fail the pod.
    format!("{net}.254")
}

fn run_one(c: &mut Cluster, pod: &Value, used: &mut HashSet<String>) -> ApiResult<()> {
    let ns = ns_of(pod).unwrap_or("default").to_string();
    let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("").to_string();
    let node = get(c, "", "nodes", None, &node_name);
    let old = &pod["status"];
    let old_conds = &old["conditions"];
    let host_ip = node
        .as_ref()
        .and_then(|n| n["status"]["addresses"].as_array())
        .and_then(|a| a.iter().find(|x| x["type"] == "InternalIP"))
        .and_then(|x| x["address"].as_str())
        .unwrap_or("127.0.0.1")
        .to_string();
    // Volumes first: a missing or unbound claim keeps the pod in ContainerCreating.
    let mut blocked: Option<String> = None;
    for claim in claim_names(pod) {
        match get(c, "", "persistentvolumeclaims", Some(&ns), &claim) {
            None => {
                blocked = Some(format!(
                    "Unable to attach or mount volumes: persistentvolumeclaim \"{claim}\" not found"
                ));
                break;
            }
            Some(pvc) if !is_bound(&pvc) => {
                let wffc = storage_class(c, &pvc)
                    .is_some_and(|sc| sc["volumeBindingMode"] == "WaitForFirstConsumer");
                if wffc
                    && pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
                        .is_null()
                {
                    let mut pvc = pvc.clone();
                    pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] =
                        json!(node_name);
                    update(c, "", "persistentvolumeclaims", pvc)?;
                }
                blocked = Some(format!(
                    "Unable to attach or mount volumes: persistentvolumeclaim \"{claim}\" is not bound"
                ));
                break;
            }
            Some(_) => {}
        }
    }
    let start = old["startTime"].as_str().map_or_else(now, str::to_string);
    let sched = condition(old_conds, "PodScheduled", "True", "", "", false);
    let probe = |mut v: Value| {
        v["lastProbeTime"] = Value::Null;
        v
    };
    // The lifecycle conditions a kubelet reports: PodReadyToStartContainers `started`,
    // Initialized `init`, Ready and ContainersReady alike `ready` (status, reason,
    // message), then PodScheduled.
    let lifecycle = |started: &str, init: (&str, &str, &str), ready: (&str, &str, &str)| {
        vec![
            probe(condition(
                old_conds,
                "PodReadyToStartContainers",
                started,
                "",
                "",
                false,
            )),
            probe(condition(
                old_conds,
                "Initialized",
                init.0,
                init.1,
                init.2,
                false,
            )),
            probe(condition(
                old_conds, "Ready", ready.0, ready.1, ready.2, false,
            )),
            probe(condition(
                old_conds,
                "ContainersReady",
                ready.0,
                ready.1,
                ready.2,
                false,
            )),
            probe(sched.clone()),
        ]
    };
    let mut status = json!({
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "startTime": start,
        "qosClass": old["qosClass"].as_str().unwrap_or("BestEffort"),
    });
    if let Some(message) = blocked {
        event(c, pod, "Warning", "FailedMount", &message);
        status["phase"] = json!("Pending");
        status["conditions"] = json!(lifecycle(
            "False",
            ("True", "", ""),
            (
                "False",
                "ContainersNotReady",
                "containers with unready status"
            ),
        ));
        status["containerStatuses"] = container_statuses(pod, "containers", &start, "waiting");
        return set_status(c, "", "pods", pod, status).map(|_| ());
    }
    let host_network = pod["spec"]["hostNetwork"].as_bool().unwrap_or(false);
    let ip = match old["podIP"].as_str() {
        Some(ip) => ip.to_string(),
        None if host_network => host_ip.clone(),
        None => match &node {
            Some(n) => pod_ip(n, used),
            None => pod_ip(&json!({}), used),
        },
    };
    status["podIP"] = json!(ip);
    status["podIPs"] = json!([{"ip": ip}]);
    // Pods with containers of held images run for real: from here on the kubelet
    // (`kubelet.rs`) reports their containers.
    let real = kubelet::runs(pod);
    let finishing = !real
        && runs_to_completion(pod)
        && old["phase"] == "Running"
        && age_seconds(&old["startTime"]).is_some_and(|s| s >= 1);
    if finishing {
        let t = now();
        status["phase"] = json!("Succeeded");
        let mut conditions = lifecycle(
            "False",
            ("True", "PodCompleted", ""),
            ("False", "PodCompleted", ""),
        );
        conditions.push(emulated(old_conds));
        status["conditions"] = json!(conditions);
        status["containerStatuses"] =
            container_statuses(pod, "containers", &start, &format!("done:{t}"));
    } else if real {
        // Ready to start: the kubelet starts the containers and reports from here on;
        // the pod stays Pending until they run, as on a real node.
        status["phase"] = json!("Pending");
        let waiting = "containers with incomplete status";
        status["conditions"] = json!(lifecycle(
            "True",
            ("False", "ContainersNotInitialized", waiting),
            ("False", "ContainersNotReady", waiting),
        ));
        status["containerStatuses"] = container_statuses(pod, "containers", &start, "waiting");
        if pod["spec"]["initContainers"].is_array() {
            status["initContainerStatuses"] =
                container_statuses(pod, "initContainers", &start, "waiting");
        }
        return set_status(c, "", "pods", pod, status).map(|_| ());
    } else {
        status["phase"] = json!("Running");
        let mut conditions = lifecycle("True", ("True", "", ""), ("True", "", ""));
        conditions.push(emulated(old_conds));
        status["conditions"] = json!(conditions);
        status["containerStatuses"] = container_statuses(pod, "containers", &start, "running");
        if old["phase"] != "Running" {
            for ctr in pod["spec"]["containers"].as_array().into_iter().flatten() {
                let image = ctr["image"].as_str().unwrap_or("");
                let name = ctr["name"].as_str().unwrap_or("");
                event(
                    c,
                    pod,
                    "Normal",
                    "Pulled",
                    &format!("Container image \"{image}\" already present on machine"),
                );
                event(
                    c,
                    pod,
                    "Normal",
                    "Started",
                    &format!("Started container {name}"),
                );
            }
        }
    }
    if pod["spec"]["initContainers"].is_array() {
        status["initContainerStatuses"] =
            container_statuses(pod, "initContainers", &start, &format!("done:{start}"));
    }
    set_status(c, "", "pods", pod, status).map(|_| ())
}

/// The annotation that marks Endpoints this controller maintains.
const TRIGGER: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Endpoints for every Service with a selector in the namespaces within `scope` (what
/// they hold depends on their namespace's Services and pods only), and none for the
/// Services gone there. Returns whether it failed on one.
pub fn endpoints(c: &mut Cluster, scope: &Scope) -> bool {
    let services = in_scope(c, scope, "", "services", |svc| {
        !deleting(svc)
            && svc["spec"]["selector"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
            && svc["spec"]["type"] != "ExternalName"
    });
    let mut failed = false;
    let mut wanted: HashSet<(String, String)> = HashSet::new();
    for svc in &services {
        let ns = ns_of(svc).unwrap_or("default").to_string();
        wanted.insert((ns.clone(), name_of(svc).to_string()));
        failed |= log_err(
            &format!("endpoints {}", name_of(svc)),
            endpoints_for(c, svc, &ns),
        );
    }
    let stale = in_scope(c, scope, "", "endpoints", |e| {
        e["metadata"]["annotations"][TRIGGER].is_string()
            && !wanted.contains(&(ns_of(e).unwrap_or("").to_string(), name_of(e).to_string()))
    });
    for e in stale {
        failed |= log_err("stale endpoints", delete(c, "", "endpoints", &e));
    }
    failed
}

fn endpoints_for(c: &mut Cluster, svc: &Value, ns: &str) -> ApiResult<()> {
    let selector = svc["spec"]["selector"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut pods: Vec<Value> = c
        .store
        .list("", "pods", Some(ns))
        .filter(|(_, p)| {
            !deleting(p)
                && p["status"]["podIP"].is_string()
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
                && selector
                    .iter()
                    .all(|(k, v)| p["metadata"]["labels"].get(k) == Some(v))
        })
        .map(|(_, p)| p.clone())
        .collect();
    pods.sort_by(|a, b| {
        a["status"]["podIP"]
            .as_str()
            .cmp(&b["status"]["podIP"].as_str())
    });
    let address = |p: &Value| {
        let mut a = json!({
            "ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
            "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns, "uid": p["metadata"]["uid"]},
        });
        if p["spec"]["subdomain"] == svc["metadata"]["name"] && p["spec"]["hostname"].is_string() {
            a["hostname"] = p["spec"]["hostname"].clone();
        }
        a
    };
    let ready: Vec<Value> = pods.iter().filter(|p| pod_ready(p)).map(address).collect();
    let not_ready: Vec<Value> = pods.iter().filter(|p| !pod_ready(p)).map(address).collect();
    let ports: Vec<Value> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = match &p["targetPort"] {
                Value::Number(n) => n.as_i64()?,
                Value::String(s) => match s.parse::<i64>() {
                    Ok(n) => n,
                    Err(_) => pods.iter().find_map(|pod| {
                        pod["spec"]["containers"]
                            .as_array()?
                            .iter()
                            .find_map(|ctr| {
                                ctr["ports"].as_array()?.iter().find_map(|cp| {
                                    (cp["name"].as_str() == Some(s.as_str()))
                                        .then(|| cp["containerPort"].as_i64())
                                        .flatten()
                                })
                            })
                    })?,
                },
                _ => p["port"].as_i64()?,
            };
            let mut e = json!({"port": port, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
            if let Some(n) = p["name"].as_str() {
                e["name"] = json!(n);
            }
            if let Some(a) = p["appProtocol"].as_str() {
                e["appProtocol"] = json!(a);
            }
            Some(e)
        })
        .collect();
    let mut subset = json!({});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    if !ports.is_empty() {
        subset["ports"] = json!(ports);
    }
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        Value::Null
    } else {
        json!([subset])
    };
    let mut labels = svc["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    if svc["spec"]["clusterIP"] == "None" {
        labels["service.kubernetes.io/headless"] = json!("");
    }
    let name = name_of(svc).to_string();
    match get(c, "", "endpoints", Some(ns), &name) {
        Some(mut e) => {
            if e["subsets"] == subsets && e["metadata"]["labels"] == labels {
                return Ok(());
            }
            e["subsets"] = subsets;
            e["metadata"]["labels"] = labels;
            e["metadata"]["annotations"][TRIGGER] = json!(now());
            if let Some(m) = e["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            update(c, "", "endpoints", e).map(|_| ())
        }
        None => {
            let mut e = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "labels": labels, "annotations": {TRIGGER: now()}},
            });
            if !subsets.is_null() {
                e["subsets"] = subsets;
            }
            create(c, "", "endpoints", Some(ns), e).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_normalized_like_a_runtime() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("bitnami/redis:7"),
            "docker.io/bitnami/redis:7"
        );
        assert_eq!(normalize_image("quay.io/x/y:1"), "quay.io/x/y:1");
        assert_eq!(
            normalize_image("localhost:5000/y"),
            "localhost:5000/y:latest"
        );
    }
}

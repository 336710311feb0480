//! Server-side printing: a `get` or `list` asked for with
//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` (what `kubectl get` sends)
//! answers a `meta.k8s.io/v1` Table with the columns a real API server prints for the
//! built-in kinds (priority 1 columns are `-o wide`), a custom resource's
//! `additionalPrinterColumns`, and NAME and AGE for everything else. Each row carries
//! the object's metadata (`includeObject=Metadata`, the default), the whole object
//! (`Object`) or nothing (`None`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::resources::ResourceInfo;
use super::store::{Key, Store};

/// Whether an `Accept` header asks for a Table.
pub fn wanted(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && (params.contains(&"v=v1") || params.contains(&"v=v1beta1"))
    })
}

/// One column: name, type, format, description and priority (0 always, 1 wide).
struct Column {
    name: &'static str,
    kind: &'static str,
    wide: bool,
}

const fn col(name: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        wide: false,
    }
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: "integer",
        wide: false,
    }
}

const fn wide(name: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        wide: true,
    }
}

/// A printer: the columns, and each object's cells in their order.
type Cells = fn(&Value, DateTime<Utc>) -> Vec<Value>;

/// The printer of a built-in kind, by `group/resource`.
fn builtin(group: &str, resource: &str) -> Option<(Vec<Column>, Cells)> {
    let name = Column {
        name: "Name",
        kind: "string",
        wide: false,
    };
    Some(match (group, resource) {
        ("", "pods") => (
            vec![
                name,
                col("Ready"),
                col("Status"),
                col("Restarts"),
                col("Age"),
                wide("IP"),
                wide("Node"),
                wide("Nominated Node"),
                wide("Readiness Gates"),
            ],
            pod_cells,
        ),
        ("apps", "deployments") => (
            vec![
                name,
                col("Ready"),
                int("Up-to-date"),
                int("Available"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ],
            |o, now| {
                let st = &o["status"];
                vec![
                    json!(format!(
                        "{}/{}",
                        num(st, "/readyReplicas"),
                        o["spec"]["replicas"].as_i64().unwrap_or(1)
                    )),
                    json!(num(st, "/updatedReplicas")),
                    json!(num(st, "/availableReplicas")),
                    age(o, now),
                    containers(o, "/spec/template/spec"),
                    images(o, "/spec/template/spec"),
                    selector(&o["spec"]["selector"]),
                ]
            },
        ),
        ("apps", "replicasets") => (
            vec![
                name,
                int("Desired"),
                int("Current"),
                int("Ready"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ],
            |o, now| {
                vec![
                    json!(o["spec"]["replicas"].as_i64().unwrap_or(1)),
                    json!(num(&o["status"], "/replicas")),
                    json!(num(&o["status"], "/readyReplicas")),
                    age(o, now),
                    containers(o, "/spec/template/spec"),
                    images(o, "/spec/template/spec"),
                    selector(&o["spec"]["selector"]),
                ]
            },
        ),
        ("apps", "statefulsets") => (
            vec![
                name,
                col("Ready"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
            ],
            |o, now| {
                vec![
                    json!(format!(
                        "{}/{}",
                        num(&o["status"], "/readyReplicas"),
                        o["spec"]["replicas"].as_i64().unwrap_or(1)
                    )),
                    age(o, now),
                    containers(o, "/spec/template/spec"),
                    images(o, "/spec/template/spec"),
                ]
            },
        ),
        ("apps", "daemonsets") => (
            vec![
                name,
                int("Desired"),
                int("Current"),
                int("Ready"),
                int("Up-to-date"),
                int("Available"),
                col("Node Selector"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ],
            |o, now| {
                let st = &o["status"];
                vec![
                    json!(num(st, "/desiredNumberScheduled")),
                    json!(num(st, "/currentNumberScheduled")),
                    json!(num(st, "/numberReady")),
                    json!(num(st, "/updatedNumberScheduled")),
                    json!(num(st, "/numberAvailable")),
                    json!(pairs(&o["spec"]["template"]["spec"]["nodeSelector"])),
                    age(o, now),
                    containers(o, "/spec/template/spec"),
                    images(o, "/spec/template/spec"),
                    selector(&o["spec"]["selector"]),
                ]
            },
        ),
        ("batch", "jobs") => (
            vec![
                name,
                col("Status"),
                col("Completions"),
                col("Duration"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ],
            |o, now| {
                let st = &o["status"];
                let completions = o["spec"]["completions"].as_i64();
                let succeeded = num(st, "/succeeded");
                let done = |t: &str| {
                    st["conditions"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| c["type"] == t && c["status"] == "True")
                    })
                };
                let status = if done("Complete") {
                    "Complete"
                } else if done("Failed") {
                    "Failed"
                } else if done("Suspended") {
                    "Suspended"
                } else {
                    "Running"
                };
                let duration = match (
                    time(&st["startTime"]),
                    time(&st["completionTime"]).or(Some(now)),
                ) {
                    (Some(a), Some(b)) => human(b - a),
                    _ => String::new(),
                };
                vec![
                    json!(status),
                    json!(match completions {
                        Some(c) => format!("{succeeded}/{c}"),
                        None => format!(
                            "{succeeded}/1 of {}",
                            o["spec"]["parallelism"].as_i64().unwrap_or(1)
                        ),
                    }),
                    json!(duration),
                    age(o, now),
                    containers(o, "/spec/template/spec"),
                    images(o, "/spec/template/spec"),
                    selector(&o["spec"]["selector"]),
                ]
            },
        ),
        ("batch", "cronjobs") => (
            vec![
                name,
                col("Schedule"),
                col("Timezone"),
                col("Suspend"),
                int("Active"),
                col("Last Schedule"),
                col("Age"),
                wide("Containers"),
                wide("Images"),
                wide("Selector"),
            ],
            |o, now| {
                let spec = &o["spec"];
                vec![
                    json!(spec["schedule"].as_str().unwrap_or("")),
                    json!(spec["timeZone"].as_str().unwrap_or("<none>")),
                    json!(spec["suspend"].as_bool().unwrap_or(false).to_string()),
                    json!(o["status"]["active"].as_array().map_or(0, Vec::len)),
                    json!(
                        time(&o["status"]["lastScheduleTime"])
                            .map_or_else(|| "<none>".into(), |t| human(now - t))
                    ),
                    age(o, now),
                    containers(o, "/spec/jobTemplate/spec/template/spec"),
                    images(o, "/spec/jobTemplate/spec/template/spec"),
                    selector(&spec["jobTemplate"]["spec"]["selector"]),
                ]
            },
        ),
        ("", "services") => (
            vec![
                name,
                col("Type"),
                col("Cluster-IP"),
                col("External-IP"),
                col("Port(s)"),
                col("Age"),
                wide("Selector"),
            ],
            |o, now| {
                let spec = &o["spec"];
                let kind = spec["type"].as_str().unwrap_or("ClusterIP");
                let ports: Vec<String> = list(&spec["ports"])
                    .iter()
                    .map(|p| {
                        let proto = p["protocol"].as_str().unwrap_or("TCP");
                        match p["nodePort"].as_i64() {
                            Some(np) if kind != "ClusterIP" => {
                                format!("{}:{np}/{proto}", p["port"])
                            }
                            _ => format!("{}/{proto}", p["port"]),
                        }
                    })
                    .collect();
                let mut external: Vec<String> = list(&o["status"]["loadBalancer"]["ingress"])
                    .iter()
                    .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                    .map(str::to_string)
                    .collect();
                external.extend(strings(&spec["externalIPs"]));
                let external = match (kind, external.is_empty()) {
                    ("ExternalName", _) => spec["externalName"].as_str().unwrap_or("").into(),
                    ("LoadBalancer", true) => "<pending>".to_string(),
                    (_, true) => "<none>".to_string(),
                    _ => external.join(","),
                };
                vec![
                    json!(kind),
                    json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                    json!(external),
                    json!(if ports.is_empty() {
                        "<none>".into()
                    } else {
                        ports.join(",")
                    }),
                    age(o, now),
                    json!(none_if_empty(pairs(&spec["selector"]))),
                ]
            },
        ),
        ("", "endpoints") => (vec![name, col("Endpoints"), col("Age")], |o, now| {
            let mut eps = Vec::new();
            for s in list(&o["subsets"]) {
                for a in list(&s["addresses"]) {
                    for p in list(&s["ports"]) {
                        eps.push(format!("{}:{}", a["ip"].as_str().unwrap_or(""), p["port"]));
                    }
                    if list(&s["ports"]).is_empty() {
                        eps.push(a["ip"].as_str().unwrap_or("").to_string());
                    }
                }
            }
            let shown = if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                eps.join(",")
            };
            vec![json!(none_if_empty(shown)), age(o, now)]
        }),
        ("", "configmaps") => (vec![name, int("Data"), col("Age")], |o, now| {
            let n = o["data"].as_object().map_or(0, Map::len)
                + o["binaryData"].as_object().map_or(0, Map::len);
            vec![json!(n), age(o, now)]
        }),
        ("", "secrets") => (
            vec![name, col("Type"), int("Data"), col("Age")],
            |o, now| {
                vec![
                    json!(o["type"].as_str().unwrap_or("Opaque")),
                    json!(o["data"].as_object().map_or(0, Map::len)),
                    age(o, now),
                ]
            },
        ),
        ("", "persistentvolumeclaims") => (
            vec![
                name,
                col("Status"),
                col("Volume"),
                col("Capacity"),
                col("Access Modes"),
                col("StorageClass"),
                col("VolumeAttributesClass"),
                col("Age"),
                wide("VolumeMode"),
            ],
            |o, now| {
                let bound = o["status"]["phase"] == "Bound";
                let class = super::storage::claim_class(o).unwrap_or("<unset>");
                vec![
                    json!(o["status"]["phase"].as_str().unwrap_or("Pending")),
                    json!(o["spec"]["volumeName"].as_str().unwrap_or("")),
                    json!(if bound {
                        o["status"]["capacity"]["storage"].as_str().unwrap_or("")
                    } else {
                        ""
                    }),
                    json!(if bound {
                        access_modes(&o["status"]["accessModes"])
                    } else {
                        String::new()
                    }),
                    json!(class),
                    json!(
                        o["spec"]["volumeAttributesClassName"]
                            .as_str()
                            .unwrap_or("<unset>")
                    ),
                    age(o, now),
                    json!(o["spec"]["volumeMode"].as_str().unwrap_or("Filesystem")),
                ]
            },
        ),
        ("", "persistentvolumes") => (
            vec![
                name,
                col("Capacity"),
                col("Access Modes"),
                col("Reclaim Policy"),
                col("Status"),
                col("Claim"),
                col("StorageClass"),
                col("VolumeAttributesClass"),
                col("Reason"),
                col("Age"),
                wide("VolumeMode"),
            ],
            |o, now| {
                let spec = &o["spec"];
                let claim = match (
                    spec["claimRef"]["namespace"].as_str(),
                    spec["claimRef"]["name"].as_str(),
                ) {
                    (Some(ns), Some(n)) => format!("{ns}/{n}"),
                    _ => String::new(),
                };
                vec![
                    json!(spec["capacity"]["storage"].as_str().unwrap_or("")),
                    json!(access_modes(&spec["accessModes"])),
                    json!(
                        spec["persistentVolumeReclaimPolicy"]
                            .as_str()
                            .unwrap_or("Retain")
                    ),
                    json!(o["status"]["phase"].as_str().unwrap_or("Pending")),
                    json!(claim),
                    json!(spec["storageClassName"].as_str().unwrap_or("")),
                    json!(
                        spec["volumeAttributesClassName"]
                            .as_str()
                            .unwrap_or("<unset>")
                    ),
                    json!(o["status"]["reason"].as_str().unwrap_or("")),
                    age(o, now),
                    json!(spec["volumeMode"].as_str().unwrap_or("Filesystem")),
                ]
            },
        ),
        ("storage.k8s.io", "storageclasses") => (
            vec![
                name,
                col("Provisioner"),
                col("ReclaimPolicy"),
                col("VolumeBindingMode"),
                col("AllowVolumeExpansion"),
                col("Age"),
            ],
            |o, now| {
                vec![
                    json!(o["provisioner"].as_str().unwrap_or("")),
                    json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
                    json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
                    json!(
                        o["allowVolumeExpansion"]
                            .as_bool()
                            .unwrap_or(false)
                            .to_string()
                    ),
                    age(o, now),
                ]
            },
        ),
        ("", "nodes") => (
            vec![
                name,
                col("Status"),
                col("Roles"),
                col("Age"),
                col("Version"),
                wide("Internal-IP"),
                wide("External-IP"),
                wide("OS-Image"),
                wide("Kernel-Version"),
                wide("Container-Runtime"),
            ],
            |o, now| {
                let ready = list(&o["status"]["conditions"])
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                let mut status = if ready { "Ready" } else { "NotReady" }.to_string();
                if o["spec"]["unschedulable"].as_bool() == Some(true) {
                    status.push_str(",SchedulingDisabled");
                }
                let roles: Vec<&str> = o["metadata"]["labels"]
                    .as_object()
                    .map(|l| {
                        l.keys()
                            .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                            .collect()
                    })
                    .unwrap_or_default();
                let address = |t: &str| {
                    list(&o["status"]["addresses"])
                        .iter()
                        .find(|a| a["type"] == t)
                        .and_then(|a| a["address"].as_str())
                        .unwrap_or("<none>")
                        .to_string()
                };
                let info = &o["status"]["nodeInfo"];
                vec![
                    json!(status),
                    json!(if roles.is_empty() {
                        "<none>".into()
                    } else {
                        roles.join(",")
                    }),
                    age(o, now),
                    json!(info["kubeletVersion"].as_str().unwrap_or("")),
                    json!(address("InternalIP")),
                    json!(address("ExternalIP")),
                    json!(info["osImage"].as_str().unwrap_or("<unknown>")),
                    json!(info["kernelVersion"].as_str().unwrap_or("<unknown>")),
                    json!(
                        info["containerRuntimeVersion"]
                            .as_str()
                            .unwrap_or("<unknown>")
                    ),
                ]
            },
        ),
        ("", "namespaces") => (vec![name, col("Status"), col("Age")], |o, now| {
            vec![
                json!(o["status"]["phase"].as_str().unwrap_or("Active")),
                age(o, now),
            ]
        }),
        ("", "events") | ("events.k8s.io", "events") => (
            vec![
                col("Last Seen"),
                col("Type"),
                col("Reason"),
                col("Object"),
                wide("Subobject"),
                wide("Source"),
                col("Message"),
                wide("First Seen"),
                wide("Count"),
                wide("Name"),
            ],
            |o, now| {
                let first = time(&o["firstTimestamp"]).or(time(&o["eventTime"]));
                let last = time(&o["lastTimestamp"]).or(first);
                let ago = |t: Option<DateTime<Utc>>| {
                    t.map_or_else(|| "<unknown>".into(), |t| human(now - t))
                };
                let obj = &o["involvedObject"];
                vec![
                    json!(ago(last)),
                    json!(o["type"].as_str().unwrap_or("")),
                    json!(o["reason"].as_str().unwrap_or("")),
                    json!(format!(
                        "{}/{}",
                        obj["kind"].as_str().unwrap_or("").to_lowercase(),
                        obj["name"].as_str().unwrap_or("")
                    )),
                    json!(obj["fieldPath"].as_str().unwrap_or("")),
                    json!(
                        o["source"]["component"]
                            .as_str()
                            .or(o["reportingComponent"].as_str())
                            .unwrap_or("")
                    ),
                    json!(o["message"].as_str().unwrap_or("").trim()),
                    json!(ago(first)),
                    json!(o["count"].as_i64().unwrap_or(1)),
                    json!(o["metadata"]["name"].as_str().unwrap_or("")),
                ]
            },
        ),
        ("networking.k8s.io", "ingressclasses") => (
            vec![name, col("Controller"), col("Parameters"), col("Age")],
            |o, now| {
                let p = &o["spec"]["parameters"];
                let parameters = match (p["kind"].as_str(), p["name"].as_str()) {
                    (Some(kind), Some(name)) => format!("{kind}/{name}"),
                    _ => "<none>".into(),
                };
                vec![
                    json!(o["spec"]["controller"].as_str().unwrap_or("")),
                    json!(parameters),
                    age(o, now),
                ]
            },
        ),
        ("scheduling.k8s.io", "priorityclasses") => (
            vec![
                name,
                int("Value"),
                col("Global-Default"),
                col("Age"),
                col("PreemptionPolicy"),
            ],
            |o, now| {
                vec![
                    json!(o["value"].as_i64().unwrap_or(0)),
                    json!(o["globalDefault"].as_bool().unwrap_or(false).to_string()),
                    age(o, now),
                    json!(
                        o["preemptionPolicy"]
                            .as_str()
                            .unwrap_or("PreemptLowerPriority")
                    ),
                ]
            },
        ),
        ("networking.k8s.io", "ingresses") => (
            vec![
                name,
                col("Class"),
                col("Hosts"),
                col("Address"),
                col("Ports"),
                col("Age"),
            ],
            |o, now| {
                let spec = &o["spec"];
                let hosts: Vec<&str> = list(&spec["rules"])
                    .iter()
                    .filter_map(|r| r["host"].as_str())
                    .collect();
                let address: Vec<&str> = list(&o["status"]["loadBalancer"]["ingress"])
                    .iter()
                    .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                    .collect();
                vec![
                    json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
                    json!(if hosts.is_empty() {
                        "*".into()
                    } else {
                        hosts.join(",")
                    }),
                    json!(address.join(",")),
                    json!(if list(&spec["tls"]).is_empty() {
                        "80"
                    } else {
                        "80, 443"
                    }),
                    age(o, now),
                ]
            },
        ),
        _ => return None,
    })
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn strings(v: &Value) -> Vec<String> {
    list(v)
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn num(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn none_if_empty(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// `k=v,k2=v2` of a string map, sorted.
fn pairs(v: &Value) -> String {
    let mut out: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.join(",")
}

/// A label selector as kubectl prints it.
fn selector(sel: &Value) -> Value {
    let mut parts = vec![pairs(&sel["matchLabels"])];
    for e in list(&sel["matchExpressions"]) {
        let key = e["key"].as_str().unwrap_or("");
        let values = strings(&e["values"]).join(",");
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        });
    }
    parts.retain(|p| !p.is_empty());
    json!(none_if_empty(parts.join(",")))
}

/// One field of every container of the pod spec at `spec`, joined by commas.
fn each_container(o: &Value, spec: &str, field: &str) -> Value {
    let values: Vec<&str> = o
        .pointer(&format!("{spec}/containers"))
        .map(list)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c[field].as_str())
        .collect();
    json!(values.join(","))
}

fn containers(o: &Value, spec: &str) -> Value {
    each_container(o, spec, "name")
}

fn images(o: &Value, spec: &str) -> Value {
    each_container(o, spec, "image")
}

/// `RWO,ROX` as kubectl abbreviates access modes.
fn access_modes(v: &Value) -> String {
    let mut out = Vec::new();
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if list(v).iter().any(|m| m == mode) {
            out.push(short);
        }
    }
    out.join(",")
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn age(o: &Value, now: DateTime<Utc>) -> Value {
    json!(
        time(&o["metadata"]["creationTimestamp"])
            .map_or_else(|| "<unknown>".into(), |t| human(now - t))
    )
}

/// A duration as the API server prints ages (`k8s.io/apimachinery`'s HumanDuration):
/// `42s`, `3m12s`, `15m`, `5h3m`, `20h`, `3d4h`, `120d`, `2y30d`.
pub fn human(d: chrono::TimeDelta) -> String {
    // `3m12s`, but `3m` when the smaller unit is zero.
    let two = |a: i64, au: &str, b: i64, bu: &str| match b {
        0 => format!("{a}{au}"),
        _ => format!("{a}{au}{b}{bu}"),
    };
    let secs = d.num_seconds();
    let (minutes, hours) = (secs / 60, secs / 3600);
    let days = hours / 24;
    match () {
        _ if secs < -1 => "<invalid>".into(),
        _ if secs < 0 => "0s".into(),
        _ if secs < 120 => format!("{secs}s"),
        _ if minutes < 10 => two(minutes, "m", secs % 60, "s"),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 => two(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => two(days, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{days}d"),
        _ if hours < 24 * 365 * 8 => two(days / 365, "y", days % 365, "d"),
        _ => format!("{}y", days / 365),
    }
}

/// A pod's cells: ready containers, the status kubectl shows (a waiting or terminated
/// container's reason before the phase), restarts, and the wide columns.
fn pod_cells(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let st = &o["status"];
    let statuses = list(&st["containerStatuses"]);
    let total = list(&o["spec"]["containers"]).len();
    let ready = statuses
        .iter()
        .filter(|c| c["ready"].as_bool() == Some(true))
        .count();
    let mut restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    // The last restart's time: when a container's previous run ended.
    let mut last_restart = statuses
        .iter()
        .chain(list(&st["initContainerStatuses"]))
        .filter_map(|c| time(&c["lastState"]["terminated"]["finishedAt"]))
        .max();
    let mut status = st["reason"]
        .as_str()
        .or(st["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    // As kubectl's printer: the first init container not done says where the pod is.
    let inits = list(&st["initContainerStatuses"]);
    let total_inits = list(&o["spec"]["initContainers"]).len();
    let mut initializing = false;
    for (i, init) in inits.iter().enumerate() {
        restarts += init["restartCount"].as_i64().unwrap_or(0);
        let terminated = &init["state"]["terminated"];
        let waiting = init["state"]["waiting"]["reason"].as_str().unwrap_or("");
        if terminated.is_object() && terminated["exitCode"].as_i64() == Some(0) {
            continue;
        }
        status = if terminated.is_object() {
            match terminated["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => format!(
                    "Init:ExitCode:{}",
                    terminated["exitCode"].as_i64().unwrap_or(0)
                ),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{total_inits}")
        };
        initializing = true;
        break;
    }
    if !initializing {
        let mut running = false;
        for c in statuses.iter().rev() {
            if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
                status = r.to_string();
            } else if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
                status = r.to_string();
            } else if c["state"]["terminated"].is_object() {
                status = format!(
                    "ExitCode:{}",
                    c["state"]["terminated"]["exitCode"].as_i64().unwrap_or(0)
                );
            } else if c["ready"].as_bool() == Some(true) && c["state"]["running"].is_object() {
                running = true;
            }
        }
        // A container done while another still runs: the pod runs.
        if status == "Completed" && running {
            status = if st["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            }) {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if restarts == 0 {
        last_restart = None;
    }
    if o["metadata"]["deletionTimestamp"].is_string() {
        status = "Terminating".into();
    }
    let gates: Vec<&str> = list(&o["spec"]["readinessGates"])
        .iter()
        .filter_map(|g| g["conditionType"].as_str())
        .collect();
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(match last_restart {
            Some(t) => format!("{restarts} ({} ago)", human(now - t)),
            None => restarts.to_string(),
        }),
        age(o, now),
        json!(st["podIP"].as_str().unwrap_or("<none>")),
        json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
        json!(st["nominatedNodeName"].as_str().unwrap_or("<none>")),
        json!(if gates.is_empty() {
            "<none>".into()
        } else {
            format!("0/{}", gates.len())
        }),
    ]
}

/// A custom resource's `additionalPrinterColumns` for `info`'s version, if its CRD
/// declares any.
fn crd_columns(store: &Store, info: &ResourceInfo) -> Option<Vec<Value>> {
    let crd = store.get(&Key::new(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "",
        &format!("{}.{}", info.plural, info.group),
    ))?;
    list(&crd["spec"]["versions"])
        .iter()
        .find(|v| v["name"] == info.version.as_str())
        .map(|v| list(&v["additionalPrinterColumns"]).to_vec())
        .filter(|c| !c.is_empty())
}

/// The value at a printer column's `jsonPath` (`.status.replicas`, `.spec.items[0].name`,
/// `.metadata.labels.app`); `None` when absent.
fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = obj;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        let (field, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            v = v.get(field)?;
        }
        for idx in indices.split('[').filter(|s| !s.is_empty()) {
            let n: usize = idx.trim_end_matches(']').parse().ok()?;
            v = v.get(n)?;
        }
    }
    Some(v)
}

fn crd_cell(obj: &Value, column: &Value, now: DateTime<Utc>) -> Value {
    let path = column["jsonPath"].as_str().unwrap_or("");
    let Some(v) = at_path(obj, path).filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    match column["type"].as_str() {
        Some("date") => time(v).map_or(Value::Null, |t| json!(human(now - t))),
        _ => match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => v.clone(),
            other => json!(other.to_string()),
        },
    }
}

/// The Table answering a `get` (one object) or `list` of `info` (`out`), with the
/// rows' objects as `include` says (`Object`, `Metadata`, `None`).
pub fn convert(store: &Store, info: &ResourceInfo, out: &Value, include: &str) -> Value {
    let now = Utc::now();
    let objects: Vec<&Value> = match out["items"].as_array() {
        Some(items) if out["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
            items.iter().collect()
        }
        _ => vec![out],
    };
    let printer = builtin(&info.group, &info.plural);
    let crd = if printer.is_none() {
        crd_columns(store, info)
    } else {
        None
    };
    let mut defs = Vec::new();
    let mut def = |name: &str, kind: &str, wide: bool, description: &str| {
        defs.push(json!({
            "name": name,
            "type": kind,
            "format": if name == "Name" { "name" } else { "" },
            "description": description,
            "priority": u8::from(wide),
        }));
    };
    let rows: Vec<Vec<Value>> = match (&printer, &crd) {
        (Some((columns, cells)), _) => {
            for c in columns {
                def(c.name, c.kind, c.wide, "");
            }
            let named = columns.first().is_some_and(|c| c.name == "Name");
            objects
                .iter()
                .map(|o| {
                    let mut row = Vec::new();
                    if named {
                        row.push(name_cell(info, o));
                    }
                    row.extend(cells(o, now));
                    row
                })
                .collect()
        }
        (None, Some(columns)) => {
            def(
                "Name",
                "string",
                false,
                "Name must be unique within a namespace.",
            );
            let mut aged = false;
            for c in columns {
                def(
                    c["name"].as_str().unwrap_or(""),
                    c["type"].as_str().unwrap_or("string"),
                    c["priority"].as_i64().unwrap_or(0) > 0,
                    c["description"].as_str().unwrap_or(""),
                );
                aged |= c["jsonPath"] == ".metadata.creationTimestamp";
            }
            if !aged {
                def("Age", "date", false, "");
            }
            objects
                .iter()
                .map(|o| {
                    let mut row = vec![name_cell(info, o)];
                    row.extend(columns.iter().map(|c| crd_cell(o, c, now)));
                    if !aged {
                        row.push(age(o, now));
                    }
                    row
                })
                .collect()
        }
        (None, None) => {
            def(
                "Name",
                "string",
                false,
                "Name must be unique within a namespace.",
            );
            def("Age", "date", false, "");
            objects
                .iter()
                .map(|o| vec![name_cell(info, o), age(o, now)])
                .collect()
        }
    };
    let rows: Vec<Value> = objects
        .iter()
        .zip(rows)
        .map(|(o, cells)| {
            let mut row = json!({ "cells": cells });
            match include {
                "None" => {}
                "Object" => row["object"] = (*o).clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"],
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {
            "resourceVersion": out["metadata"]["resourceVersion"],
            "continue": out["metadata"]["continue"],
        },
        "columnDefinitions": defs,
        "rows": rows,
    })
}

/// The NAME cell: the object's name; a default StorageClass says so.
fn name_cell(info: &ResourceInfo, o: &Value) -> Value {
    let name = o["metadata"]["name"].as_str().unwrap_or("");
    let default = info.plural == "storageclasses"
        && [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|a| o["metadata"]["annotations"][a] == "true");
    if default {
        json!(format!("{name} (default)"))
    } else {
        json!(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
        assert!(!wanted(
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
        ));
    }

    #[test]
    fn ages_as_the_api_server_prints_them() {
        let s = chrono::TimeDelta::seconds;
        assert_eq!(human(s(42)), "42s");
        assert_eq!(human(s(119)), "119s");
        assert_eq!(human(s(192)), "3m12s");
        assert_eq!(human(s(900)), "15m");
        assert_eq!(human(s(5 * 3600 + 180)), "5h3m");
        assert_eq!(human(s(20 * 3600)), "20h");
        assert_eq!(human(s(3 * 86400 + 4 * 3600)), "3d4h");
        assert_eq!(human(s(120 * 86400)), "120d");
        assert_eq!(human(s(-5)), "<invalid>");
    }

    #[test]
    fn json_paths_of_printer_columns() {
        let o = json!({"spec": {"items": [{"name": "a"}], "n": 3}, "metadata": {"labels": {"app": "x"}}});
        assert_eq!(at_path(&o, ".spec.items[0].name"), Some(&json!("a")));
        assert_eq!(at_path(&o, ".spec.n"), Some(&json!(3)));
        assert_eq!(at_path(&o, ".metadata.labels.app"), Some(&json!("x")));
        assert_eq!(at_path(&o, ".spec.items[3].name"), None);
    }
}

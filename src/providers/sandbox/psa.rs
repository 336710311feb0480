//! Pod Security Admission, as current clusters enforce it: a namespace labelled
//! `pod-security.kubernetes.io/enforce: baseline|restricted` refuses new pods that break
//! that level's checks, with the API server's wording (`violates PodSecurity
//! "restricted:latest": …`). `privileged` (or no label) allows everything. Pods made by
//! controllers go through the same check, so a Deployment in such a namespace gets no
//! pods, as on a real cluster (its controller records a `FailedCreate` warning saying
//! why). A sandbox started [`with_pod_security`](super::SandboxConfig::with_pod_security)
//! enforces that level where a namespace has no label, as an admission configuration's
//! `defaults` do.
//!
//! A namespace labelled `pod-security.kubernetes.io/warn: baseline|restricted` lets
//! such pods in but warns the client (`Warning` headers, which kubectl prints), for pods
//! and for the pod templates of workloads, as the API server does.
//!
//! Owns the checks of the Pod Security Standards (the `latest` version). The `audit`
//! mode is not emulated (the sandbox keeps no audit log).

use serde_json::{Value, json};

use super::resources::ResourceInfo;
use super::verbs::{ApiError, ApiResult, Cluster};

/// The label that sets a namespace's enforced level.
pub const ENFORCE: &str = "pod-security.kubernetes.io/enforce";
/// The label that sets the level a client is warned about.
pub const WARN: &str = "pod-security.kubernetes.io/warn";

/// Capabilities baseline allows a container to add.
const BASELINE_CAPS: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Volume types restricted allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Sysctls baseline allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .filter_map(|k| spec[k].as_array())
        .flatten()
}

fn name(c: &Value) -> &str {
    c["name"].as_str().unwrap_or("")
}

/// `container "a"` or `containers "a", "b"`.
fn which(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    if names.len() == 1 {
        format!("container {}", quoted[0])
    } else {
        format!("containers {}", quoted.join(", "))
    }
}

/// What `pod` breaks at `level` (`baseline` or `restricted`), each as the API server
/// words it.
pub fn violations(level: &str, pod: &Value) -> Vec<String> {
    let spec = &pod["spec"];
    let mut out = Vec::new();
    let restricted = level == "restricted";
    // Baseline.
    let host: Vec<&str> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|k| spec[*k].as_bool() == Some(true))
        .collect();
    if !host.is_empty() {
        out.push(format!(
            "host namespaces ({})",
            host.iter()
                .map(|k| format!("{k}=true"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let privileged: Vec<&str> = containers(spec)
        .filter(|c| c["securityContext"]["privileged"].as_bool() == Some(true))
        .map(name)
        .collect();
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            which(&privileged)
        ));
    }
    let mut added: Vec<String> = Vec::new();
    let mut adders: Vec<&str> = Vec::new();
    for c in containers(spec) {
        let caps: Vec<&str> = c["securityContext"]["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| {
                if restricted {
                    *cap != "NET_BIND_SERVICE"
                } else {
                    !BASELINE_CAPS.contains(cap)
                }
            })
            .collect();
        if !caps.is_empty() {
            adders.push(name(c));
            for cap in caps {
                let q = format!("{cap:?}");
                if !added.contains(&q) {
                    added.push(q);
                }
            }
        }
    }
    if !restricted && !adders.is_empty() {
        out.push(format!(
            "non-default capabilities ({} must not include {} in securityContext.capabilities.add)",
            which(&adders),
            added.join(", ")
        ));
    }
    let host_path: Vec<&str> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.get("hostPath").is_some())
        .filter_map(|v| v["name"].as_str())
        .collect();
    if !host_path.is_empty() {
        let quoted: Vec<String> = host_path.iter().map(|n| format!("{n:?}")).collect();
        out.push(format!(
            "hostPath volume{} {}",
            if host_path.len() == 1 { "" } else { "s" },
            quoted.join(", ")
        ));
    }
    let host_ports: Vec<String> = containers(spec)
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .filter_map(|p| p["hostPort"].as_i64())
        .filter(|p| *p != 0)
        .map(|p| p.to_string())
        .collect();
    if !host_ports.is_empty() {
        out.push(format!("hostPort ({})", host_ports.join(", ")));
    }
    let unsafe_sysctls: Vec<String> = spec["securityContext"]["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(|n| format!("{n:?}"))
        .collect();
    if !unsafe_sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", unsafe_sysctls.join(", ")));
    }
    let unconfined = |sc: &Value| sc["seccompProfile"]["type"] == "Unconfined";
    if unconfined(&spec["securityContext"])
        || containers(spec).any(|c| unconfined(&c["securityContext"]))
    {
        out.push("seccompProfile (pod or containers must not set securityContext.seccompProfile.type to \"Unconfined\")".into());
    }
    if !restricted {
        return out;
    }
    // Restricted.
    let bad_volumes: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            v.as_object().is_some_and(|m| {
                m.keys()
                    .filter(|k| *k != "name")
                    .any(|k| !RESTRICTED_VOLUMES.contains(&k.as_str()) && k != "hostPath")
            })
        })
        .filter_map(|v| v["name"].as_str().map(|n| format!("{n:?}")))
        .collect();
    if !bad_volumes.is_empty() {
        out.push(format!(
            "restricted volume types ({})",
            bad_volumes.join(", ")
        ));
    }
    let escalating: Vec<&str> = containers(spec)
        .filter(|c| c["securityContext"]["allowPrivilegeEscalation"].as_bool() != Some(false))
        .map(name)
        .collect();
    if !escalating.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            which(&escalating)
        ));
    }
    let undropped: Vec<&str> = containers(spec)
        .filter(|c| {
            !c["securityContext"]["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        })
        .map(name)
        .collect();
    if !undropped.is_empty() || !adders.is_empty() {
        let mut parts = Vec::new();
        if !undropped.is_empty() {
            parts.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                which(&undropped)
            ));
        }
        if !adders.is_empty() {
            parts.push(format!(
                "{} must not include {} in securityContext.capabilities.add",
                which(&adders),
                added.join(", ")
            ));
        }
        out.push(format!("unrestricted capabilities ({})", parts.join("; ")));
    }
    let pod_non_root = spec["securityContext"]["runAsNonRoot"].as_bool() == Some(true);
    let rooted: Vec<&str> = containers(spec)
        .filter(|c| match c["securityContext"]["runAsNonRoot"].as_bool() {
            Some(v) => !v,
            None => !pod_non_root,
        })
        .map(name)
        .collect();
    if !rooted.is_empty() {
        out.push(format!(
            "runAsNonRoot != true (pod or {} must set securityContext.runAsNonRoot=true)",
            which(&rooted)
        ));
    }
    let uid_zero = spec["securityContext"]["runAsUser"].as_i64() == Some(0)
        || containers(spec).any(|c| c["securityContext"]["runAsUser"].as_i64() == Some(0));
    if uid_zero {
        out.push("runAsUser=0 (pod and containers must not set runAsUser=0)".into());
    }
    let pod_seccomp = matches!(
        spec["securityContext"]["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault" | "Localhost")
    );
    let no_seccomp: Vec<&str> = containers(spec)
        .filter(
            |c| match c["securityContext"]["seccompProfile"]["type"].as_str() {
                Some(t) => !matches!(t, "RuntimeDefault" | "Localhost"),
                None => !pod_seccomp,
            },
        )
        .map(name)
        .collect();
    if !no_seccomp.is_empty() {
        out.push(format!(
            "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            which(&no_seccomp)
        ));
    }
    out
}

/// The level a namespace's label `label` names, when it is one that restricts.
fn level_of(c: &Cluster, ns: &str, label: &str) -> Option<String> {
    let level = super::controllers::get(c, "", "namespaces", None, ns)?["metadata"]["labels"]
        [label]
        .as_str()?
        .to_string();
    matches!(level.as_str(), "baseline" | "restricted").then_some(level)
}

/// Warns the client (without refusing) when a pod, or the pod template of a workload
/// (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob), breaks its
/// namespace's `warn` level, in the API server's words.
pub fn warn(c: &Cluster, ns: &str, info: &ResourceInfo, obj: &Value) {
    let Some(level) = level_of(c, ns, WARN) else {
        return;
    };
    let pod = match info.plural.as_str() {
        "pods" => obj.clone(),
        "cronjobs" => json!({"spec": obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]}),
        _ => json!({"spec": obj["spec"]["template"]["spec"]}),
    };
    if !pod["spec"].is_object() {
        return;
    }
    let broken = violations(&level, &pod);
    if !broken.is_empty() {
        c.warnings.borrow_mut().push(format!(
            "would violate PodSecurity \"{level}:latest\": {}",
            broken.join(", ")
        ));
    }
}

/// Refuses a new pod its namespace's enforced level forbids.
pub fn admit(c: &Cluster, ns: &str, pod_name: &str, pod: &Value) -> ApiResult<()> {
    let label = super::controllers::get(c, "", "namespaces", None, ns).and_then(|n| {
        n["metadata"]["labels"][ENFORCE]
            .as_str()
            .map(str::to_string)
    });
    // The admission configuration's default, where the namespace names no level.
    let level = label
        .or_else(|| c.pod_security.clone().filter(|_| ns != "kube-system"))
        .unwrap_or_default();
    if !matches!(level.as_str(), "baseline" | "restricted") {
        return Ok(());
    }
    let broken = violations(&level, pod);
    if broken.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "Forbidden",
        format!(
            "pods \"{pod_name}\" is forbidden: violates PodSecurity \"{level}:latest\": {}",
            broken.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_and_their_wording() {
        let plain = json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        assert!(violations("baseline", &plain).is_empty());
        let v = violations("restricted", &plain);
        assert_eq!(v.len(), 4, "{v:?}");
        assert!(v[0].starts_with("allowPrivilegeEscalation != false (container \"c\""));
        let hardened = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]}});
        assert!(violations("restricted", &hardened).is_empty());
        let privileged = json!({"spec": {"hostNetwork": true,
            "containers": [{"name": "c", "securityContext": {"privileged": true}}],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}});
        let v = violations("baseline", &privileged);
        assert_eq!(
            v,
            [
                "host namespaces (hostNetwork=true)",
                "privileged (container \"c\" must not set securityContext.privileged=true)",
                "hostPath volume \"h\"",
            ]
        );
    }
}

//! Pod Security for Ferry's own pods (movers and agents): the security context they
//! run with, and what to do when a namespace's Pod Security Admission level refuses
//! them.
//!
//! As root with the file capabilities only, Ferry's pods pass the `baseline` level.
//! Where a namespace enforces `restricted` (no root), a pod runs as the non-root user
//! of the workload that mounts the claim ([`RunAs`]): it reads what that workload can
//! read and writes files that workload owns. Where there is no such user, the volume
//! fails with what to do ([`refused`]).
//!
//! Owns the security contexts and the reading of refusals. Must not create pods (the
//! mover and the agent do).

use serde_json::{Value, json};

/// What Ferry's pods may do as root: read and write every file (`DAC_OVERRIDE`, which
/// also searches every folder), keep owners, modes and times (`CHOWN`, `FOWNER`,
/// `FSETID`) and make device files (`MKNOD`): all of them in Pod Security `baseline`'s
/// default set (`DAC_READ_SEARCH` is not, and is not needed).
const CAPABILITIES: [&str; 5] = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "MKNOD"];

/// The label that sets the level a namespace enforces.
const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// The user Ferry's pod (a mover, an agent) runs as where the namespace refuses root (Pod Security
/// `restricted`): the non-root user of the workload that mounts the claim, so it reads
/// what the workload reads and writes files the workload owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: i64,
    pub gid: Option<i64>,
    pub fs_group: Option<i64>,
}

impl RunAs {
    /// The user of the containers that mount `claim` in `obj` (a Pod, or a workload's
    /// pod template; a StatefulSet's `volumeClaimTemplates` name its claims
    /// `<template>-<set>-<ordinal>`), when they all run as the same non-root user.
    pub fn of_claim(obj: &Value, claim: &str) -> Option<RunAs> {
        let spec = super::graph::pod_spec(obj)?;
        let volumes = super::graph::claim_volumes(obj, claim);
        if volumes.is_empty() {
            return None;
        }
        let pod = &spec["securityContext"];
        let mut users = Vec::new();
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                let mounts = c["volumeMounts"].as_array().into_iter().flatten();
                if !mounts
                    .filter_map(|m| m["name"].as_str())
                    .any(|n| volumes.contains(&n))
                {
                    continue;
                }
                let sc = &c["securityContext"];
                let pick = |k: &str| sc[k].as_i64().or_else(|| pod[k].as_i64());
                users.push((pick("runAsUser"), pick("runAsGroup")));
            }
        }
        let (uid, gid) = *users.first()?;
        let uid = uid.filter(|u| *u > 0)?;
        if users.iter().any(|u| *u != (Some(uid), gid)) {
            return None;
        }
        Some(RunAs {
            uid,
            gid,
            fs_group: pod["fsGroup"].as_i64(),
        })
    }
}

/// The Pod Security level `namespace` enforces (`baseline`, `restricted`), from its
/// label; None where it has none, is `privileged`, or cannot be read (a user who may not
/// read namespaces: a refusal then says so when the pod is made).
pub async fn enforced(client: &kube::Client, namespace: &str) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let ns = api.get_opt(namespace).await.ok()??;
    let level = ns.metadata.labels?.remove(ENFORCE)?;
    matches!(level.as_str(), "baseline" | "restricted").then_some(level)
}

/// Whether an API error is a Pod Security refusal: the level and the reasons it gave.
pub fn refusal(e: &kube::Error) -> Option<(String, String)> {
    let kube::Error::Api(s) = e else { return None };
    if s.code != 403 {
        return None;
    }
    refusal_in(&s.message)
}

/// The level and reasons of a Pod Security refusal in a message (an API error's, or a
/// controller's `FailedCreate` event's).
pub fn refusal_in(message: &str) -> Option<(String, String)> {
    let at = message.find("violates PodSecurity ")?;
    let rest = &message[at + "violates PodSecurity ".len()..];
    let level = rest.split(':').next().unwrap_or(rest).trim_matches('"');
    let why = rest.split_once(": ").map_or("", |(_, w)| w);
    Some((level.to_string(), why.to_string()))
}

/// What to do when Pod Security refused Ferry's `pod` (`mover`, `agent`): the namespace's
/// level (`restricted`, most likely) does not admit a pod running as root, and no
/// workload using the claim runs as a user the pod could take (or `tried` it, refused
/// too).
pub fn refused(
    pod: &str,
    namespace: &str,
    level: &str,
    why: &str,
    tried: Option<&RunAs>,
) -> String {
    let after = match tried {
        Some(u) => format!(" Running as the workload's user {} was refused too.", u.uid),
        None => format!(
            " No workload mounting the claim names a non-root `runAsUser` the {pod} could run as instead."
        ),
    };
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    };
    format!(
        "the namespace enforces Pod Security \"{level}\", which refuses Ferry's {pod} pod{why}: \
         the {pod} runs as root to read and write every file whoever owns it.{after} \
         Let it in for this job with `kubectl label namespace {namespace} \
         pod-security.kubernetes.io/enforce=baseline --overwrite` (and set the label back \
         afterwards), or leave the volume data out (`--no-volumes` for a backup, \
         `--no-volume-data` for a restore, clone or migration)"
    )
}

/// A container's security context: root with the few capabilities it needs (Pod
/// Security `baseline` admits it), or, as `user`, what `restricted` asks for.
pub fn container(user: Option<&RunAs>) -> Value {
    match user {
        None => json!({
            "runAsUser": 0,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": CAPABILITIES},
            "seccompProfile": {"type": "RuntimeDefault"},
        }),
        Some(u) => {
            let mut sc = json!({
                "runAsUser": u.uid,
                "runAsNonRoot": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            });
            if let Some(g) = u.gid {
                sc["runAsGroup"] = json!(g);
            }
            sc
        }
    }
}

/// Makes the pod `spec` (its one container) run as `user`, as Pod Security `restricted`
/// admits it: non-root, in the workload's `fsGroup`.
pub fn run_as(spec: &mut Value, user: &RunAs) {
    spec["containers"][0]["securityContext"] = container(Some(user));
    spec["securityContext"] = json!({
        "runAsNonRoot": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if let Some(g) = user.fs_group {
        spec["securityContext"]["fsGroup"] = json!(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workloads_user_is_taken_from_the_containers_mounting_the_claim() {
        let deploy = json!({
            "kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "app"},
            "spec": {"template": {"spec": {
                "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                            {"name": "c", "configMap": {"name": "x"}}],
                "containers": [
                    {"name": "app", "volumeMounts": [{"name": "d", "mountPath": "/d"}],
                     "securityContext": {"runAsGroup": 3000}},
                    {"name": "side", "securityContext": {"runAsUser": 0},
                     "volumeMounts": [{"name": "c", "mountPath": "/c"}]},
                ],
            }}},
        });
        assert_eq!(
            RunAs::of_claim(&deploy, "data"),
            Some(RunAs {
                uid: 1000,
                gid: Some(3000),
                fs_group: Some(2000)
            })
        );
        assert_eq!(RunAs::of_claim(&deploy, "other"), None);

        // A StatefulSet's claims from its templates; root, or users that differ: none.
        let set = |user: serde_json::Value| {
            json!({
                "kind": "StatefulSet", "apiVersion": "apps/v1", "metadata": {"name": "db"},
                "spec": {
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                    "template": {"spec": {"containers": [
                        {"name": "db", "securityContext": user,
                         "volumeMounts": [{"name": "data", "mountPath": "/var/lib/db"}]},
                        {"name": "init", "securityContext": {"runAsUser": 999},
                         "volumeMounts": [{"name": "data", "mountPath": "/x"}]},
                    ]}},
                },
            })
        };
        assert_eq!(
            RunAs::of_claim(&set(json!({"runAsUser": 999})), "data-db-2"),
            Some(RunAs {
                uid: 999,
                gid: None,
                fs_group: None
            })
        );
        assert_eq!(
            RunAs::of_claim(&set(json!({"runAsUser": 999})), "data-db-x"),
            None
        );
        assert_eq!(
            RunAs::of_claim(&set(json!({"runAsUser": 0})), "data-db-0"),
            None
        );
        assert_eq!(
            RunAs::of_claim(&set(json!({"runAsUser": 1})), "data-db-0"),
            None
        );
        assert_eq!(RunAs::of_claim(&set(json!({})), "data-db-0"), None);
    }

    #[test]
    fn refusals_are_read_from_errors_and_events() {
        let msg = r#"Error creating: pods "ferry-agent-x-1" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "agent" must set securityContext.runAsNonRoot=true)"#;
        let (level, why) = refusal_in(msg).unwrap();
        assert_eq!(level, "restricted");
        assert!(why.starts_with("runAsNonRoot != true"), "{why}");
        assert_eq!(refusal_in("exceeded quota: q, requested: cpu=1"), None);
        let text = refused("agent", "shop", &level, &why, None);
        assert!(text.contains("Ferry's agent pod (runAsNonRoot"), "{text}");
        assert!(text.contains("the agent could run as instead"), "{text}");
        assert!(text.contains("kubectl label namespace shop"), "{text}");
    }

    #[test]
    fn as_root_a_pod_asks_for_no_more_than_baseline_allows() {
        let sc = container(None);
        let added: Vec<&str> = sc["capabilities"]["add"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        // Pod Security baseline's allowed set.
        let baseline = [
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
        assert!(added.iter().all(|c| baseline.contains(c)), "{added:?}");
        let mut spec = json!({"containers": [{"name": "c"}]});
        let u = RunAs {
            uid: 1000,
            gid: Some(3000),
            fs_group: Some(2000),
        };
        run_as(&mut spec, &u);
        assert_eq!(spec["containers"][0]["securityContext"]["runAsUser"], 1000);
        assert_eq!(
            spec["containers"][0]["securityContext"]["capabilities"]["drop"][0],
            "ALL"
        );
        assert_eq!(spec["securityContext"]["fsGroup"], 2000);
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    }
}

//! Why an agent did not do its work, in words a user can act on: the cluster refusing
//! its pod (the Job controller's `FailedCreate` event), the scheduler finding no node,
//! an image that cannot be pulled, an agent of another version, the last lines of its
//! log.
//!
//! Owns the reading and wording of those reasons. Must not create, follow or delete
//! agents (`agent.rs` does).

use std::collections::VecDeque;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};

use super::TAIL;
use crate::podsec::{self, RunAs};
use crate::within;
use ferry_repo::agent::VERSION;

/// The cluster's refusal to make an agent's pod.
pub(super) struct Refusal {
    pub(super) why: String,
    /// Final: waiting will not change it.
    pub(super) last: bool,
    /// Pod Security refused it.
    pub(super) pod_security: bool,
}

/// Why the cluster refuses to make the Job's pod, from the Job controller's
/// `FailedCreate` event (Pod Security, a quota, an admission webhook or policy
/// engine), with what to do; None while there is none (or events cannot be read).
pub(super) async fn refusal(
    client: kube::Client,
    job: &str,
    namespace: &str,
    service_account: Option<&str>,
    tried: Option<&RunAs>,
    stall: Duration,
) -> Option<Refusal> {
    let events: Api<Event> = Api::namespaced(client, namespace);
    let lp =
        ListParams::default().fields(&format!("involvedObject.name={job},reason=FailedCreate"));
    let list = within(stall, || "reading events".to_string(), async {
        Ok(events.list(&lp).await.ok())
    })
    .await
    .ok()??;
    let message = list
        .items
        .into_iter()
        .filter_map(|e| e.message)
        .next_back()?;
    let said = message
        .strip_prefix("Error creating: ")
        .unwrap_or(&message)
        .to_string();
    if let Some((level, why)) = podsec::refusal_in(&said) {
        return Some(Refusal {
            why: podsec::refused("agent", namespace, &level, &why, tried),
            last: true,
            pod_security: true,
        });
    }
    // A named account that is not there; `default` comes with a namespace, soon after
    // one is made.
    if said.contains("error looking up service account")
        && let Some(sa) = service_account
    {
        return Some(Refusal {
            why: format!(
                "the agents' service account {sa} does not exist in {} ({said}): create it there with access to the bucket, or name another (--agent-service-account, agent.serviceAccount in config.yaml)",
                namespace
            ),
            last: true,
            pod_security: false,
        });
    }
    let advice = if said.contains("error looking up service account") {
        format!(
            "the namespace {namespace} has no default service account yet (the cluster's controllers make it with the namespace): check that they run, or name one (--agent-service-account)"
        )
    } else if said.contains("exceeded quota") {
        format!(
            "the namespace's ResourceQuota has no room for the agent: raise the quota, or lower the agent's requests (--agent-cpu, --agent-memory; `kubectl describe quota -n {}`)",
            namespace
        )
    } else {
        format!(
            "an admission webhook or policy of the cluster refuses it: let Ferry's agent Jobs in (label app.kubernetes.io/managed-by=ferry), or use --data-path exec (`kubectl describe job {} -n {}`)",
            job, namespace
        )
    };
    Some(Refusal {
        why: format!("the cluster refuses to start the agent's pod ({said}): {advice}"),
        last: false,
        pod_security: false,
    })
}

pub(super) const REFUSED: &str = "\u{0}agent version ";

pub(super) fn push_tail(tail: &mut VecDeque<String>, line: &str) {
    tail.push_back(line.chars().take(400).collect());
    while tail.len() > TAIL {
        tail.pop_front();
    }
}

/// An agent of another version answered: it is the wrong image.
pub(super) fn refused_version(tail: &VecDeque<String>) -> Option<String> {
    tail.iter().find_map(|l| l.strip_prefix(REFUSED)).map(|other| {
        format!(
            "the agent image is ferry-agent {other}, but this is Ferry {VERSION}: use the agent image built with this Ferry (`agent.image` in config.yaml, or --agent-image)"
        )
    })
}

pub(super) fn lines(tail: &VecDeque<String>) -> String {
    let shown: Vec<&str> = tail
        .iter()
        .filter(|l| !l.starts_with(REFUSED))
        .map(String::as_str)
        .collect();
    if shown.is_empty() {
        String::new()
    } else {
        format!("; its last log lines: {}", shown.join(" | "))
    }
}

/// What the pod's container said as it ended (its exit code and reason), for a report.
pub(super) fn ended_with(pod: &Pod) -> String {
    let Some(status) = pod.status.as_ref() else {
        return String::new();
    };
    for c in status.container_statuses.iter().flatten() {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) {
            return format!(
                " (exit code {}{}{})",
                t.exit_code,
                t.reason
                    .as_deref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default(),
                t.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    String::new()
}

/// Why a pending pod will not start by waiting: its image cannot be pulled.
pub(super) fn cannot_start(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    for c in status.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
            && matches!(
                w.reason.as_deref(),
                Some(
                    "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull"
                )
            )
        {
            return Some(format!(
                "the agent image {:?} cannot be pulled ({}): set an image the cluster can pull (`agent.image` in config.yaml, or --agent-image)",
                c.image,
                w.message
                    .clone()
                    .unwrap_or_else(|| w.reason.clone().unwrap_or_default())
            ));
        }
    }
    None
}

/// The scheduler's reason when no node takes the pod (`0/3 nodes are available: …`).
pub(super) fn unschedulable(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    status.conditions.iter().flatten().find_map(|c| {
        (c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable"))
        .then(|| c.message.clone().unwrap_or_else(|| "Unschedulable".into()))
    })
}

/// `s` in at most about `n` characters: its start and its end (where the advice is),
/// with `…` for the middle (an object store's error can carry pages of debugging
/// detail).
pub(super) fn clip(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let head: String = s.chars().take(n / 2).collect();
    let tail: String = s.chars().skip(count - n / 2).collect();
    format!("{head} … {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_version_is_worded_and_other_lines_are_kept() {
        let mut tail = VecDeque::new();
        for n in 0..20 {
            push_tail(&mut tail, &format!("line {n}"));
        }
        assert_eq!(tail.len(), TAIL);
        assert_eq!(refused_version(&tail), None);
        push_tail(&mut tail, &format!("{REFUSED}9.9.9"));
        let why = refused_version(&tail).unwrap();
        assert!(
            why.contains("ferry-agent 9.9.9") && why.contains(VERSION),
            "{why}"
        );
        assert!(!lines(&tail).contains("9.9.9"));
    }

    #[test]
    fn long_reports_keep_their_start_and_their_advice() {
        let s = format!("start {} end: do this", "x".repeat(5000));
        let c = clip(&s, 100);
        assert!(
            c.starts_with("start ") && c.ends_with("end: do this") && c.contains(" … "),
            "{c}"
        );
        assert!(c.chars().count() < 110);
        assert_eq!(clip("short", 100), "short");
    }
}

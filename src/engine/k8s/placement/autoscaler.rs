//! A cluster that adds nodes on demand, for a pod whose node rule no node admits now (a
//! pool scaled to zero): whether the cluster has an autoscaler, and what it said last of
//! the pod.
//!
//! - cluster-autoscaler (EKS managed node groups, AKS, GKE) writes its status to the
//!   ConfigMap `kube-system/cluster-autoscaler-status` (on by default), and tells of a
//!   pod it considered with the events `TriggeredScaleUp` and `NotTriggerScaleUp`.
//! - Karpenter (EKS Auto Mode, AKS node auto-provisioning) serves the API group
//!   `karpenter.sh`, and tells of a pod with `Nominated` (a node is coming) or a
//!   `FailedScheduling` of its own, `Failed to schedule pod, …`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::Api;
use kube::api::ListParams;

/// How long one question to the cluster may take.
const ASK: Duration = Duration::from_secs(30);

/// cluster-autoscaler's status ConfigMap, in `kube-system`.
const STATUS: &str = "cluster-autoscaler-status";

/// Who adds nodes to the cluster on demand, as the user reads it; `None` where the
/// cluster shows no autoscaler. One whose status Ferry may not read (RBAC) may run: the
/// pod's events then decide.
pub async fn of_cluster(client: &kube::Client) -> Option<String> {
    let karpenter = tokio::time::timeout(ASK, client.list_api_groups());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let status = tokio::time::timeout(ASK, cms.get_opt(STATUS));
    let (karpenter, status) = tokio::join!(karpenter, status);
    if let Ok(Ok(groups)) = karpenter
        && groups.groups.iter().any(|g| g.name == "karpenter.sh")
    {
        return Some("Karpenter".into());
    }
    match status {
        Ok(Ok(Some(_))) => Some("the cluster autoscaler".into()),
        Ok(Ok(None)) => None,
        Ok(Err(_)) | Err(_) => Some("the cluster's autoscaler, if it has one,".into()),
    }
}

/// What the cluster's autoscaler said last of a pod no node takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Word {
    /// A node is coming for it.
    Coming,
    /// No node it can add takes the pod: its reason.
    Refused(String),
    /// Nothing (yet).
    Silent,
}

/// What the autoscaler said last of the pod `pod` in `ns`.
pub async fn word_on(client: &kube::Client, ns: &str, pod: &str) -> Word {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Pod,involvedObject.name={pod}"
    ));
    match tokio::time::timeout(ASK, events.list(&lp)).await {
        Ok(Ok(list)) => last_word(&list.items),
        _ => Word::Silent,
    }
}

/// The newest of the autoscaler's events among `events` (a pod's).
fn last_word(events: &[Event]) -> Word {
    events
        .iter()
        .filter_map(|e| {
            let said = e.message.clone().unwrap_or_default();
            let word = match e.reason.as_deref()? {
                "TriggeredScaleUp" | "Nominated" => Word::Coming,
                "NotTriggerScaleUp" => Word::Refused(said),
                "FailedScheduling" if said.starts_with("Failed to schedule pod") => {
                    Word::Refused(said)
                }
                _ => return None,
            };
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.first_timestamp.as_ref().map(|t| t.0));
            // Within one second, the later write (resource versions grow).
            let version = e
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            Some(((when, version), word))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, w)| w)
        .unwrap_or(Word::Silent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(reason: &str, message: &str, at: &str, version: u64) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p.{version}"), "resourceVersion": version.to_string()},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": reason, "message": message, "lastTimestamp": at,
        }))
        .unwrap_or_default()
    }

    #[test]
    fn the_autoscalers_newest_word_on_a_pod_counts() {
        assert_eq!(last_word(&[]), Word::Silent);
        let scheduler = event(
            "FailedScheduling",
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            "2026-12-06T08:00:00Z",
            1,
        );
        assert_eq!(last_word(std::slice::from_ref(&scheduler)), Word::Silent);
        let refused = event(
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector",
            "2026-12-06T08:00:05Z",
            2,
        );
        let coming = event(
            "TriggeredScaleUp",
            "pod triggered scale-up: [{ledger 0->1 (max: 3)}]",
            "2026-12-06T08:00:05Z",
            3,
        );
        // The same second: the later write.
        assert_eq!(
            last_word(&[coming.clone(), refused.clone(), scheduler.clone()]),
            Word::Coming
        );
        let later = event(
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 1 in backoff after failed scale-up",
            "2026-12-06T08:01:00Z",
            4,
        );
        assert_eq!(
            last_word(&[later, coming, refused]),
            Word::Refused("pod didn't trigger scale-up: 1 in backoff after failed scale-up".into())
        );
        // Karpenter's words.
        let nominated = event(
            "Nominated",
            "Pod should schedule on: nodeclaim/default-x2v9k",
            "2026-12-06T08:00:02Z",
            5,
        );
        assert_eq!(last_word(&[nominated, scheduler.clone()]), Word::Coming);
        let failed = event(
            "FailedScheduling",
            "Failed to schedule pod, incompatible with nodepool \"default\"",
            "2026-12-06T08:00:02Z",
            6,
        );
        assert!(
            matches!(last_word(&[scheduler, failed]), Word::Refused(m) if m.contains("nodepool"))
        );
    }
}

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
const ASK: Duration = Duration::from_secs(10);

/// cluster-autoscaler's status ConfigMap, in `kube-system`.
const STATUS: &str = "cluster-autoscaler-status";

/// The autoscalers a cluster shows (both, while it moves from one to the other).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Autoscalers {
    pub cluster_autoscaler: bool,
    pub karpenter: bool,
}

impl Autoscalers {
    /// As the user reads them.
    pub fn name(&self) -> &'static str {
        match (self.cluster_autoscaler, self.karpenter) {
            (true, true) => "the cluster autoscaler and Karpenter",
            (false, true) => "Karpenter",
            _ => "the cluster autoscaler",
        }
    }

    /// Whether `component` (an event's source) is one of them.
    fn said(&self, component: &str) -> bool {
        (self.cluster_autoscaler && component.contains("cluster-autoscaler"))
            || (self.karpenter && component.contains("karpenter"))
    }
}

/// The autoscalers that add nodes to the cluster on demand, where it shows any:
/// cluster-autoscaler's status ConfigMap read, or the `karpenter.sh` API served. A
/// status Ferry may not read (RBAC) counts as none: Ferry then does what it does on a
/// cluster of fixed size.
pub async fn of_cluster(client: &kube::Client) -> Option<Autoscalers> {
    let karpenter = tokio::time::timeout(ASK, client.list_api_groups());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let status = tokio::time::timeout(ASK, cms.get_opt(STATUS));
    let (karpenter, status) = tokio::join!(karpenter, status);
    let found = Autoscalers {
        karpenter: matches!(karpenter, Ok(Ok(g)) if g.groups.iter().any(|g| g.name == "karpenter.sh")),
        cluster_autoscaler: matches!(status, Ok(Ok(Some(_)))),
    };
    (found.karpenter || found.cluster_autoscaler).then_some(found)
}

/// What the cluster's autoscalers said last of a pod no node takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Word {
    /// A node is coming for it.
    Coming,
    /// No node they can add takes the pod: the reason.
    Refused(String),
    /// They cannot add one for now (a node group in backoff after a failed scale-up),
    /// and will try again: the reason.
    Later(String),
    /// Nothing (yet).
    Silent,
}

/// What `which` said last of the pod `pod` in `ns`.
pub async fn word_on(client: &kube::Client, which: &Autoscalers, ns: &str, pod: &str) -> Word {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Pod,involvedObject.name={pod}"
    ));
    match tokio::time::timeout(ASK, events.list(&lp)).await {
        Ok(Ok(list)) => last_word(which, &list.items),
        _ => Word::Silent,
    }
}

/// The autoscalers' word among `events` (a pod's): each one's newest, and a node one of
/// them brings outweighs another's refusal.
fn last_word(which: &Autoscalers, events: &[Event]) -> Word {
    let newest = |component: &str| {
        events
            .iter()
            .filter(|e| {
                let from = [
                    e.source.as_ref().and_then(|s| s.component.as_deref()),
                    e.reporting_component.as_deref(),
                ];
                from.into_iter()
                    .flatten()
                    .any(|c| c.contains(component) && which.said(c))
            })
            .filter_map(|e| {
                let said = e.message.clone().unwrap_or_default();
                let word = match e.reason.as_deref()? {
                    "TriggeredScaleUp" | "Nominated" => Word::Coming,
                    // A node group that failed to grow is tried again after a while.
                    "NotTriggerScaleUp" if said.contains("in backoff after failed scale-up") => {
                        Word::Later(said)
                    }
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
    };
    let words = [newest("cluster-autoscaler"), newest("karpenter")];
    if words.contains(&Word::Coming) {
        return Word::Coming;
    }
    let find = |refused: bool| {
        words.iter().find(|w| match w {
            Word::Refused(_) => refused,
            Word::Later(_) => !refused,
            _ => false,
        })
    };
    find(true)
        .or_else(|| find(false))
        .cloned()
        .unwrap_or(Word::Silent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(from: &str, reason: &str, message: &str, at: &str, version: u64) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p.{version}"), "resourceVersion": version.to_string()},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "source": {"component": from},
            "reason": reason, "message": message, "lastTimestamp": at,
        }))
        .unwrap_or_default()
    }

    const CA: Autoscalers = Autoscalers {
        cluster_autoscaler: true,
        karpenter: false,
    };
    const KARPENTER: Autoscalers = Autoscalers {
        cluster_autoscaler: false,
        karpenter: true,
    };
    const BOTH: Autoscalers = Autoscalers {
        cluster_autoscaler: true,
        karpenter: true,
    };

    #[test]
    fn the_autoscalers_newest_word_on_a_pod_counts() {
        assert_eq!(last_word(&CA, &[]), Word::Silent);
        let scheduler = event(
            "default-scheduler",
            "FailedScheduling",
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            "2026-12-06T08:00:00Z",
            1,
        );
        assert_eq!(
            last_word(&CA, std::slice::from_ref(&scheduler)),
            Word::Silent
        );
        let refused = event(
            "cluster-autoscaler",
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector",
            "2026-12-06T08:00:05Z",
            2,
        );
        let coming = event(
            "cluster-autoscaler",
            "TriggeredScaleUp",
            "pod triggered scale-up: [{ledger 0->1 (max: 3)}]",
            "2026-12-06T08:00:05Z",
            3,
        );
        // The same second: the later write.
        assert_eq!(
            last_word(&CA, &[coming.clone(), refused.clone(), scheduler.clone()]),
            Word::Coming
        );
        let later = event(
            "cluster-autoscaler",
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 1 max node group size reached",
            "2026-12-06T08:01:00Z",
            4,
        );
        assert_eq!(
            last_word(&CA, &[later.clone(), coming.clone(), refused.clone()]),
            Word::Refused("pod didn't trigger scale-up: 1 max node group size reached".into())
        );
        // A node group in backoff is tried again: no refusal yet.
        let backoff = event(
            "cluster-autoscaler",
            "NotTriggerScaleUp",
            "pod didn't trigger scale-up: 1 in backoff after failed scale-up",
            "2026-12-06T08:02:00Z",
            5,
        );
        assert_eq!(
            last_word(&CA, &[later.clone(), backoff]),
            Word::Later("pod didn't trigger scale-up: 1 in backoff after failed scale-up".into())
        );
        // Karpenter's words, and only from the autoscalers the cluster shows.
        let nominated = event(
            "karpenter",
            "Nominated",
            "Pod should schedule on: nodeclaim/default-x2v9k",
            "2026-12-06T08:00:02Z",
            6,
        );
        assert_eq!(
            last_word(&KARPENTER, &[nominated.clone(), scheduler.clone()]),
            Word::Coming
        );
        assert_eq!(
            last_word(&CA, std::slice::from_ref(&nominated)),
            Word::Silent
        );
        let failed = event(
            "karpenter",
            "FailedScheduling",
            "Failed to schedule pod, incompatible with nodepool \"default\"",
            "2026-12-06T08:00:02Z",
            7,
        );
        assert!(
            matches!(last_word(&KARPENTER, &[scheduler, failed]), Word::Refused(m) if m.contains("nodepool"))
        );
        // Both: one's node outweighs the other's refusal, however new.
        assert_eq!(last_word(&BOTH, &[nominated, later]), Word::Coming);
        assert_eq!(BOTH.name(), "the cluster autoscaler and Karpenter");
    }
}

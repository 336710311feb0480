//! Where Ferry's pod for a claim (a mover or an agent) runs: after the pods that use
//! the claim.
//!
//! - A ReadWriteOnce claim in use is read on the node that holds it, whatever that
//!   node's taints: the pod is pinned there.
//! - Elsewhere the pod takes the tolerations of the claim's pods, so it may run on a pool
//!   dedicated to the workload but not on other tainted nodes (the control plane, a node
//!   being drained).
//! - A pod that binds a new claim (a restore into a `WaitForFirstConsumer` class) also
//!   takes the workload's node selector and required node affinity (less the operating
//!   system and architecture: the agent's image is Linux on its own architecture): the
//!   volume is made in a zone, and on a pool, where the workload can mount it. A bound
//!   volume's own node affinity places every other pod.
//! - A rule that no node of the cluster admits now (a pool scaled to zero, another
//!   cluster's labels) is kept where the cluster adds nodes on demand (see
//!   [`autoscaler`]): Ferry's pod asks for a node as the workload's would. While the
//!   autoscaler says one is coming, the pod waits for it (up to [`SCALE_UP_LIMIT`]),
//!   the start timeout held. The rule is dropped, with a note, and the pod started again
//!   without it, when the autoscaler says it adds none, or says nothing within the start
//!   timeout; at once where the cluster shows no autoscaler, or where the nodes cannot
//!   be listed (no right to). The data then arrives as it did before, wherever the
//!   scheduler puts Ferry's pod.

pub mod autoscaler;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Map, Value, json};

/// Labels of a node's operating system and architecture, which the workload's rule does
/// not pass on to Ferry's pod.
const PLATFORM: [&str; 4] = [
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// How long listing the nodes may take.
const LIST_NODES: Duration = Duration::from_secs(30);

/// How long a pod waits for a node its rule asks for once the autoscaler said one is
/// coming (cluster-autoscaler's own limit for a node to join is 15 min).
pub const SCALE_UP_LIMIT: Duration = Duration::from_secs(15 * 60);

/// What a dropped node rule means for the restored workload.
const DROPPED: &str = "the volume is made wherever a node takes Ferry's pod, which may be another zone than the one the workload's pods will run in (then they cannot mount it; recreate the claim in their zone, or restore again once a node matches)";

/// Where the pods that use a claim may run, which Ferry's pod for it follows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    /// The tolerations of the claim's pods.
    pub tolerations: Vec<Value>,
    /// Their nodes, for a pod that binds the claim (see the module's doc).
    pub nodes: Option<NodeRule>,
    /// Who may add a node the rule admits where none does now: the pod asks it for one
    /// (see [`Placement::node_wait`]).
    pub scale_up: Option<autoscaler::Autoscalers>,
}

/// What a pod waiting for a node its rule asks for does (see [`Placement::node_wait`]).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeWait {
    /// The autoscaler brings one: wait, the start timeout held (up to [`SCALE_UP_LIMIT`]).
    Coming,
    /// Nothing said yet: wait, within the start timeout.
    Waiting,
    /// Start again without the rule: why.
    GiveUp(String),
}

/// A workload's node selector and the terms of its required node affinity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeRule {
    pub selector: Map<String, Value>,
    /// `nodeSelectorTerms`: a node must match one of them.
    pub terms: Vec<Value>,
}

impl Placement {
    /// The placement of the pods of `obj` (a Pod, or a workload's pod template) when
    /// they mount `claim`; `None` when they do not.
    pub fn of_workload(obj: &Value, claim: &str) -> Option<Placement> {
        if crate::graph::claim_volumes(obj, claim).is_empty() {
            return None;
        }
        let spec = crate::graph::pod_spec(obj)?;
        let mut selector = spec["nodeSelector"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        selector.retain(|k, _| !PLATFORM.contains(&k.as_str()));
        let mut terms: Vec<Value> = spec["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut any_term = false;
        for t in &mut terms {
            let before = t["matchExpressions"].as_array().map_or(0, Vec::len);
            if let Some(exprs) = t["matchExpressions"].as_array_mut() {
                exprs.retain(|e| !PLATFORM.contains(&e["key"].as_str().unwrap_or_default()));
            }
            let left = |k: &str| t[k].as_array().is_some_and(|a| !a.is_empty());
            // A term that asked only for a platform now admits every node: so does the
            // whole rule (terms are alternatives).
            any_term |= before > 0 && !left("matchExpressions") && !left("matchFields");
        }
        if any_term {
            terms.clear();
        }
        let rule = NodeRule { selector, terms };
        Some(Placement {
            tolerations: spec["tolerations"].as_array().cloned().unwrap_or_default(),
            nodes: (!rule.selector.is_empty() || !rule.terms.is_empty()).then_some(rule),
            scale_up: None,
        })
    }

    /// This placement, also tolerating `extra` (the user's `--tolerate`).
    pub fn tolerating(&self, extra: &[Value]) -> Placement {
        let mut p = self.clone();
        for t in extra {
            if !p.tolerations.contains(t) {
                p.tolerations.push(t.clone());
            }
        }
        p
    }

    /// Writes the placement into a pod `spec`: on `node` where the claim is held there
    /// (tolerating every taint: it must run there), else after the claim's pods.
    pub fn apply(&self, spec: &mut Value, node: Option<&str>) {
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
            spec["tolerations"] = json!([{"operator": "Exists"}]);
            return;
        }
        if !self.tolerations.is_empty() {
            spec["tolerations"] = json!(self.tolerations);
        }
        if let Some(rule) = &self.nodes {
            if !rule.selector.is_empty() {
                spec["nodeSelector"] = Value::Object(rule.selector.clone());
            }
            if !rule.terms.is_empty() {
                spec["affinity"] = json!({"nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": rule.terms}
                }});
            }
        }
    }

    /// Whether `node` (a Node as JSON) can take a pod placed so: schedulable, matched
    /// by the node rule, and with no `NoSchedule` or `NoExecute` taint the tolerations
    /// leave out.
    pub fn admits(&self, node: &Value) -> bool {
        if node["spec"]["unschedulable"].as_bool() == Some(true) {
            return false;
        }
        let rule_ok = self.nodes.as_ref().is_none_or(|r| r.admits(node));
        let tainted = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
            .any(|t| !self.tolerations.iter().any(|tol| tolerates(tol, t)));
        rule_ok && !tainted
    }

    /// Keeps the node rule where a node of the cluster admits it now, or where the
    /// cluster may add one (an autoscaler: then [`Placement::scale_up`] names it): a
    /// workload whose selector names labels the target's nodes lack (another cloud's pool
    /// names) would otherwise keep its data from arriving. Returns what to tell the user
    /// when the rule is dropped (as it is when the nodes cannot be listed) or waits for a
    /// node.
    pub async fn within_cluster(&mut self, client: &kube::Client) -> Option<String> {
        use k8s_openapi::api::core::v1::Node;
        let shown = self.nodes.as_ref()?.describe();
        let api: kube::Api<Node> = kube::Api::all(client.clone());
        let listed = tokio::time::timeout(LIST_NODES, api.list(&Default::default())).await;
        let why = match listed {
            Ok(Ok(nodes)) => {
                let fits = nodes
                    .items
                    .iter()
                    .filter_map(|n| serde_json::to_value(n).ok())
                    .any(|n| self.admits(&n));
                if fits {
                    return None;
                }
                if let Some(by) = autoscaler::of_cluster(client).await {
                    let note = format!(
                        "no schedulable node matches its workload's {shown} now: Ferry's pod asks {} for one, as the workload's would (if none comes, the rule is dropped)",
                        by.name()
                    );
                    self.scale_up = Some(by);
                    return Some(note);
                }
                format!("no schedulable node matches its workload's {shown} now")
            }
            Ok(Err(e)) => format!(
                "Ferry cannot list the cluster's nodes to follow its workload's {shown} ({e}; grant `list nodes` to follow it)"
            ),
            Err(_) => format!(
                "the cluster did not list its nodes within {} s, to follow its workload's {shown}",
                LIST_NODES.as_secs()
            ),
        };
        self.nodes = None;
        Some(format!("{why}: {DROPPED}"))
    }

    /// What Ferry's pod `pod` in `ns`, which no node has taken for `waited`, does about
    /// a node its rule asks for (one no node admitted at the start, in a cluster that
    /// adds nodes); `None` for a pod not waiting on one. `timed_out`: the start timeout
    /// is reached, not counting the time a node was coming.
    pub async fn node_wait(
        &self,
        client: &kube::Client,
        ns: &str,
        pod: &str,
        waited: Duration,
        timed_out: bool,
    ) -> Option<NodeWait> {
        let (which, rule) = (self.scale_up.as_ref()?, self.nodes.as_ref()?);
        let (by, shown) = (which.name(), rule.describe());
        Some(match autoscaler::word_on(client, which, ns, pod).await {
            autoscaler::Word::Refused(said) => NodeWait::GiveUp(format!(
                "{by} adds no node for its workload's {shown} ({said})"
            )),
            autoscaler::Word::Coming if waited < SCALE_UP_LIMIT => NodeWait::Coming,
            autoscaler::Word::Coming => NodeWait::GiveUp(format!(
                "{by} brought no node for its workload's {shown} within {} min",
                waited.as_secs() / 60
            )),
            autoscaler::Word::Later(said) if timed_out => NodeWait::GiveUp(format!(
                "{by} could not add a node for its workload's {shown} within {} s ({said})",
                waited.as_secs()
            )),
            autoscaler::Word::Silent if timed_out => NodeWait::GiveUp(format!(
                "{by} said nothing of a node for its workload's {shown} within {} s",
                waited.as_secs()
            )),
            autoscaler::Word::Silent | autoscaler::Word::Later(_) => NodeWait::Waiting,
        })
    }

    /// This placement without its node rule (given up because `why`), and what to tell
    /// the user of it.
    pub fn without_nodes(&self, why: &str) -> (Placement, String) {
        let p = Placement {
            nodes: None,
            scale_up: None,
            ..self.clone()
        };
        (p, format!("{why}: {DROPPED}"))
    }
}

/// Annotations of a pod that moves data (an agent or a mover) that keep node
/// autoscalers from removing its node while it runs: cluster-autoscaler's scale-down
/// and Karpenter's consolidation would cut the transfer, which the next run resumes but
/// does not finish any sooner. A drain still evicts it.
pub fn not_to_disrupt() -> Value {
    json!({
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
        "karpenter.sh/do-not-disrupt": "true",
    })
}

/// The label by which a job's agents hold their slot (see [`NodeSlots`]).
pub const SLOT_LABEL: &str = "ferry.dev/agent-slot";

/// At most `per_node` of one job's agents on a node, wherever they run. Each agent
/// holds one of `per_node` slots, and agents holding the same slot keep off each
/// other's nodes: the scheduler's through a required pod anti-affinity on the hostname
/// ([`Slot::spread`]); one pinned to a node (where its claim is held) by taking a slot no
/// agent of the job holds on that node, waiting for one to free. The scheduler still
/// chooses among the nodes (zones, taints, capacity).
#[derive(Debug)]
pub struct NodeSlots {
    state: parking_lot::Mutex<SlotState>,
    freed: tokio::sync::Notify,
    /// The job's agents run in several namespaces: the anti-affinity reaches all.
    across: bool,
}

#[derive(Debug, Default)]
struct SlotState {
    /// Agents holding each slot.
    held: Vec<usize>,
    /// The slot and node of each agent whose node is known, by its id.
    on: HashMap<u64, (usize, String)>,
    /// The slot of each agent the scheduler has not placed yet (as far as Ferry knows),
    /// by its id: it may be on any node.
    unplaced: HashMap<u64, usize>,
    next: u64,
}

/// A slot held until dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    slots: &'a NodeSlots,
    pub index: usize,
    id: u64,
}

impl NodeSlots {
    /// Slots for a job's agents, `per_node` per node; `across` when they run in more
    /// than one namespace.
    pub fn new(per_node: usize, across: bool) -> NodeSlots {
        NodeSlots {
            state: parking_lot::Mutex::new(SlotState {
                held: vec![0; per_node.max(1)],
                ..SlotState::default()
            }),
            freed: tokio::sync::Notify::new(),
            across,
        }
    }

    fn hold(&self, st: &mut SlotState, index: usize, node: Option<&str>) -> Slot<'_> {
        st.held[index] += 1;
        st.next += 1;
        match node {
            Some(n) => st.on.insert(st.next, (index, n.to_string())).map(drop),
            None => st.unplaced.insert(st.next, index).map(drop),
        };
        Slot {
            slots: self,
            index,
            id: st.next,
        }
    }

    /// For an agent the scheduler places: the slot the fewest agents hold now.
    pub fn take(&self) -> Slot<'_> {
        let mut st = self.state.lock();
        let index = (0..st.held.len()).min_by_key(|i| st.held[*i]).unwrap_or(0);
        self.hold(&mut st, index, None)
    }

    /// For an agent pinned to `node`: a slot no agent of the job holds there, nor one
    /// whose node Ferry does not know yet (the scheduler may have put it there), if one
    /// is free now (else wait with [`NodeSlots::wait_freed`] and try again).
    pub fn take_on(&self, node: &str) -> Option<Slot<'_>> {
        let mut st = self.state.lock();
        let used: HashSet<usize> = st
            .on
            .values()
            .filter(|(_, n)| n == node)
            .map(|(i, _)| *i)
            .chain(st.unplaced.values().copied())
            .collect();
        let index = (0..st.held.len())
            .filter(|i| !used.contains(i))
            .min_by_key(|i| st.held[*i])?;
        Some(self.hold(&mut st, index, Some(node)))
    }

    /// Waits until a slot is given back or an agent's node becomes known, or `at_most`.
    pub async fn wait_freed(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.freed.notified()).await;
    }
}

impl Slot<'_> {
    /// Records the node the scheduler put this slot's agent on.
    pub fn bound(&self, node: &str) {
        let learnt = {
            let mut st = self.slots.state.lock();
            st.unplaced.remove(&self.id);
            let new = st.on.get(&self.id).is_none_or(|(_, n)| n != node);
            if new {
                st.on.insert(self.id, (self.index, node.to_string()));
            }
            new
        };
        if learnt {
            self.slots.freed.notify_waiters();
        }
    }

    /// Labels the pod of `spec` (its labels `labels`) of job `job` as holding this slot,
    /// and keeps it off the nodes where an agent of the job holds the same slot, in its
    /// namespace (or every namespace, for a job that spans several). A pod given its
    /// node is not the scheduler's: its term is moot there, but its label keeps the
    /// job's other agents of the slot off that node.
    pub fn spread(&self, spec: &mut Value, labels: &mut Value, job: &str) {
        labels[SLOT_LABEL] = json!(self.index.to_string());
        let mut term = json!({
            "labelSelector": {"matchLabels": {
                crate::lease::JOB_LABEL: job,
                SLOT_LABEL: self.index.to_string(),
            }},
            "topologyKey": "kubernetes.io/hostname",
        });
        if self.slots.across {
            term["namespaceSelector"] = json!({});
        }
        spec["affinity"]["podAntiAffinity"] =
            json!({"requiredDuringSchedulingIgnoredDuringExecution": [term]});
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        {
            let mut st = self.slots.state.lock();
            if let Some(n) = st.held.get_mut(self.index) {
                *n = n.saturating_sub(1);
            }
            st.on.remove(&self.id);
            st.unplaced.remove(&self.id);
        }
        self.slots.freed.notify_waiters();
    }
}

/// A toleration from `KEY[=VALUE][:EFFECT]` as `kubectl taint` writes taints
/// (`dedicated=db:NoSchedule`; no value tolerates any value of the key, no effect every
/// effect), or `*` (`*:EFFECT`) for every taint, which also lets the pod onto cordoned,
/// not-ready and unreachable nodes.
pub fn parse_toleration(text: &str) -> Result<Value, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a toleration: give KEY[=VALUE][:EFFECT] (dedicated=db:NoSchedule), or * for every taint"
        )
    };
    let (pair, effect) = match text.rsplit_once(':') {
        Some((p, e)) => (p, Some(e)),
        None => (text, None),
    };
    let mut t = if pair == "*" {
        json!({"operator": "Exists"})
    } else {
        let (key, value) = match pair.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (pair, None),
        };
        if !qualified_name(key) || value.is_some_and(|v| !v.is_empty() && !label_value(v)) {
            return Err(bad());
        }
        match value {
            Some(v) => json!({"key": key, "operator": "Equal", "value": v}),
            None => json!({"key": key, "operator": "Exists"}),
        }
    };
    match effect {
        Some(e @ ("NoSchedule" | "PreferNoSchedule" | "NoExecute")) => t["effect"] = json!(e),
        Some(e) => {
            return Err(format!(
                "{text:?}: the effect {e:?} is not one of NoSchedule, PreferNoSchedule, NoExecute"
            ));
        }
        None => {}
    }
    Ok(t)
}

/// A label value: at most 63 characters, alphanumerics with `-`, `_`, `.` inside.
fn label_value(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let subdomain = |p: &str| {
        p.len() <= 253
            && p.split('.').all(|part| {
                let b = part.as_bytes();
                !b.is_empty()
                    && b[0].is_ascii_alphanumeric()
                    && b[b.len() - 1].is_ascii_alphanumeric()
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            })
    };
    label_value(name) && prefix.is_none_or(subdomain)
}

/// Whether Ferry's pod writing `claim` in `ns` will be its first consumer, so that the
/// volume is made where that pod lands: the claim is unbound and its class binds on
/// first use (`WaitForFirstConsumer`, as cloud classes do). A class that cannot be
/// read counts as one.
pub async fn binds_on_first_use(client: &kube::Client, ns: &str, claim: &str) -> bool {
    let claims: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client.clone(), ns);
    let Ok(Some(pvc)) = claims.get_opt(claim).await else {
        return true;
    };
    let spec = pvc.spec.unwrap_or_default();
    if spec.volume_name.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    let classes: kube::Api<StorageClass> = kube::Api::all(client.clone());
    let class = match spec.storage_class_name {
        Some(name) => classes.get_opt(&name).await.ok().flatten(),
        None => classes.list(&Default::default()).await.ok().and_then(|l| {
            l.items.into_iter().find(|c| {
                c.metadata.annotations.as_ref().is_some_and(|a| {
                    a.get("storageclass.kubernetes.io/is-default-class")
                        .is_some_and(|v| v == "true")
                })
            })
        }),
    };
    class.is_none_or(|c| c.volume_binding_mode.as_deref() != Some("Immediate"))
}

impl NodeRule {
    fn admits(&self, node: &Value) -> bool {
        let labels = node["metadata"]["labels"].as_object();
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let name = node["metadata"]["name"].as_str();
        let field = |k: &str| (k == "metadata.name").then_some(name).flatten();
        let selector_ok = self
            .selector
            .iter()
            .all(|(k, v)| label(k).is_some_and(|l| Some(l) == v.as_str()));
        let term_ok = |term: &Value| {
            let exprs = term["matchExpressions"].as_array();
            let fields = term["matchFields"].as_array();
            // An empty term matches no node.
            if exprs.is_none_or(Vec::is_empty) && fields.is_none_or(Vec::is_empty) {
                return false;
            }
            exprs.into_iter().flatten().all(|e| requirement(e, label))
                && fields.into_iter().flatten().all(|e| requirement(e, field))
        };
        selector_ok && (self.terms.is_empty() || self.terms.iter().any(term_ok))
    }

    /// `nodeSelector {zone: b}` or `required node affinity`, for a message.
    fn describe(&self) -> String {
        let selector = (!self.selector.is_empty()).then(|| {
            let pairs: Vec<String> = self
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            format!("nodeSelector {}", pairs.join(","))
        });
        let affinity = (!self.terms.is_empty()).then(|| "required node affinity".to_string());
        selector
            .into_iter()
            .chain(affinity)
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// One `matchExpressions`/`matchFields` requirement of a node selector term.
fn requirement<'a>(e: &Value, value_of: impl Fn(&str) -> Option<&'a str>) -> bool {
    let values: Vec<&str> = e["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let v = value_of(e["key"].as_str().unwrap_or_default());
    let number = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok());
    match e["operator"].as_str().unwrap_or_default() {
        "In" => v.is_some_and(|v| values.contains(&v)),
        "NotIn" => v.is_none_or(|v| !values.contains(&v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" => matches!((number(v), number(values.first().copied())), (Some(a), Some(b)) if a > b),
        "Lt" => matches!((number(v), number(values.first().copied())), (Some(a), Some(b)) if a < b),
        _ => false,
    }
}

/// Whether `toleration` tolerates `taint`: an empty key with `Exists` tolerates every
/// taint and an empty effect every effect; `Equal`, the default, also wants the value.
fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let effect = text(&toleration["effect"]);
    if !effect.is_empty() && effect != text(&taint["effect"]) {
        return false;
    }
    let key = text(&toleration["key"]);
    // An empty operator is `Equal`, as the API server reads it.
    let operator = toleration["operator"]
        .as_str()
        .filter(|o| !o.is_empty())
        .unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    key == text(&taint["key"])
        && match operator {
            "Exists" => true,
            "Equal" => text(&toleration["value"]) == text(&taint["value"]),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_set() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {
                "template": {"spec": {
                    "nodeSelector": {"pool": "db"},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-b"]}
                        ]}]
                    }}},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
                    "containers": [{"name": "db", "image": "postgres"}],
                }},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
            }
        })
    }

    fn node(name: &str, zone: &str, pool: &str, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, "pool": pool}},
               "spec": {"taints": taints}})
    }

    #[test]
    fn a_claims_pod_follows_its_workloads_selector_affinity_and_tolerations() {
        let set = db_set();
        let p = Placement::of_workload(&set, "data-db-1").unwrap();
        assert_eq!(p.tolerations.len(), 1);
        let rule = p.nodes.clone().unwrap();
        assert_eq!(rule.selector["pool"], "db");
        assert_eq!(rule.terms.len(), 1);
        assert_eq!(Placement::of_workload(&set, "data-other-1"), None);

        let mut spec = json!({});
        p.apply(&mut spec, None);
        assert_eq!(spec["nodeSelector"], json!({"pool": "db"}));
        assert_eq!(
            spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            set["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        );
        assert_eq!(
            spec["tolerations"],
            set["spec"]["template"]["spec"]["tolerations"]
        );

        // Held on a node: there, whatever its taints, and nothing else.
        let mut spec = json!({});
        p.apply(&mut spec, Some("node-a"));
        assert_eq!(spec["nodeName"], "node-a");
        assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
        assert!(spec.get("nodeSelector").is_none() && spec.get("affinity").is_none());

        // A workload with no rule or tolerations: nothing, so no tainted node.
        let plain = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "web"}}]}}}});
        let p = Placement::of_workload(&plain, "web").unwrap();
        assert_eq!(p, Placement::default());
        let mut spec = json!({});
        p.apply(&mut spec, None);
        assert_eq!(spec, json!({}));
    }

    #[test]
    fn nodes_are_admitted_by_the_schedulers_rules() {
        let p = Placement::of_workload(&db_set(), "data-db-0").unwrap();
        let dedicated = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        assert!(p.admits(&node("n1", "eu-b", "db", dedicated.clone())));
        // Another zone, another pool.
        assert!(!p.admits(&node("n2", "eu-a", "db", json!([]))));
        assert!(!p.admits(&node("n3", "eu-b", "web", json!([]))));
        // A taint it does not tolerate; one that only prefers is no bar.
        assert!(!p.admits(&node(
            "n4",
            "eu-b",
            "db",
            json!([{"key": "gpu", "effect": "NoExecute"}])
        )));
        assert!(p.admits(&node(
            "n5",
            "eu-b",
            "db",
            json!([{"key": "gpu", "effect": "PreferNoSchedule"}])
        )));
        // Cordoned.
        let mut cordoned = node("n6", "eu-b", "db", json!([]));
        cordoned["spec"]["unschedulable"] = json!(true);
        assert!(!p.admits(&cordoned));

        // Operators, fields, and the any-of terms.
        let rule = |terms: Value| Placement {
            tolerations: vec![json!({"operator": "Exists"})],
            nodes: Some(NodeRule {
                selector: Map::new(),
                terms: terms.as_array().cloned().unwrap(),
            }),
            scale_up: None,
        };
        let n = json!({"metadata": {"name": "n7", "labels": {"cores": "16", "spot": "true"}},
                       "spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}});
        for (terms, admitted) in [
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "spot", "operator": "NotIn", "values": ["false"]}]}]),
                true,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]),
                true,
            ),
            (
                json!([{}, {"matchExpressions": [{"key": "spot", "operator": "Exists"}]}]),
                true,
            ),
            (json!([{}]), false),
        ] {
            assert_eq!(rule(terms.clone()).admits(&n), admitted, "{terms}");
        }
    }

    #[test]
    fn the_workloads_platform_is_not_passed_on() {
        let mut set = db_set();
        let spec = &mut set["spec"]["template"]["spec"];
        spec["nodeSelector"] = json!({"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"});
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = json!([
            {"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-b"]},
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]},
            ]},
        ]);
        let p = Placement::of_workload(&set, "data-db-0").unwrap();
        let rule = p.nodes.unwrap();
        assert!(rule.selector.is_empty(), "{:?}", rule.selector);
        assert_eq!(
            rule.terms,
            vec![
                json!({"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-b"]}]})
            ]
        );
        // A term that asked for the architecture alone admitted every node of it: the
        // rule left admits every node.
        set["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"] = json!([
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-b"]}]},
            {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]},
        ]);
        let p = Placement::of_workload(&set, "data-db-0").unwrap();
        assert_eq!(p.nodes, None);
        // An explicit empty operator is `Equal`.
        assert!(tolerates(
            &json!({"key": "dedicated", "operator": "", "value": "db"}),
            &json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})
        ));
    }

    #[test]
    fn tolerations_are_read_from_the_command_line() {
        assert_eq!(
            parse_toleration("dedicated=db:NoSchedule").unwrap(),
            json!({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"})
        );
        assert_eq!(
            parse_toleration("node.kubernetes.io/disk-pressure").unwrap(),
            json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists"})
        );
        assert_eq!(
            parse_toleration("gpu:NoExecute").unwrap(),
            json!({"key": "gpu", "operator": "Exists", "effect": "NoExecute"})
        );
        assert_eq!(
            parse_toleration("*").unwrap(),
            json!({"operator": "Exists"})
        );
        assert_eq!(
            parse_toleration("*:NoSchedule").unwrap(),
            json!({"operator": "Exists", "effect": "NoSchedule"})
        );
        assert!(parse_toleration("example.com/pool=db-1").is_ok());
        for bad in [
            "",
            "=db",
            "dedicated=db:Sometimes",
            "a b",
            "k=v w",
            "-x",
            "a//b",
            "x/",
            "k=team/db",
            "Example.com/k",
            "k=-v",
        ] {
            assert!(parse_toleration(bad).is_err(), "{bad:?}");
        }
        // Added to the workload's own, once.
        let p = Placement::of_workload(&db_set(), "data-db-0").unwrap();
        let gpu = parse_toleration("gpu").unwrap();
        let both = p.tolerating(std::slice::from_ref(&gpu)).tolerating(&[gpu]);
        assert_eq!(both.tolerations.len(), 2);
        // The workload's own, given again: no copy.
        let same = parse_toleration("dedicated=db:NoSchedule").unwrap();
        assert_eq!(p.tolerating(&[same]).tolerations, p.tolerations);
    }

    #[test]
    fn agents_share_slots_evenly_and_a_slot_keeps_off_its_peers_nodes() {
        let slots = NodeSlots::new(2, false);
        let a = slots.take();
        let b = slots.take();
        let c = slots.take();
        assert_eq!((a.index, b.index, c.index), (0, 1, 0));
        drop(b);
        assert_eq!(slots.take().index, 1);
        // Pinned to a node: a slot no agent holds there, or none until one is freed.
        a.bound("n1");
        let pinned = slots.take_on("n1").unwrap();
        assert_eq!(pinned.index, 1);
        assert!(slots.take_on("n1").is_none());
        // c (slot 0) may be on any node until its node is known.
        assert_eq!(slots.take_on("n2").unwrap().index, 1);
        drop(a);
        assert!(slots.take_on("n1").is_none());
        c.bound("n2");
        assert_eq!(slots.take_on("n1").unwrap().index, 0);
        assert_eq!(slots.take_on("n2").unwrap().index, 1);

        let mut spec = json!({"affinity": {"nodeAffinity": {"x": 1}}});
        let mut labels = json!({"ferry.dev/job": "j1"});
        pinned.spread(&mut spec, &mut labels, "j1");
        assert_eq!(labels[SLOT_LABEL], "1");
        assert_eq!(spec["affinity"]["nodeAffinity"], json!({"x": 1}));
        let term = &spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            [0];
        assert_eq!(
            term["labelSelector"]["matchLabels"],
            json!({"ferry.dev/job": "j1", SLOT_LABEL: "1"})
        );
        assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
        // Its own namespace only, unless the job spans several.
        assert!(term.get("namespaceSelector").is_none());
        let across = NodeSlots::new(1, true);
        across.take().spread(&mut spec, &mut labels, "j1");
        let term = &spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            [0];
        assert_eq!(term["namespaceSelector"], json!({}));
    }

    #[test]
    fn a_rule_is_described_for_the_user() {
        let p = Placement::of_workload(&db_set(), "data-db-0").unwrap();
        assert_eq!(
            p.nodes.unwrap().describe(),
            "nodeSelector pool=db and required node affinity"
        );
    }
}

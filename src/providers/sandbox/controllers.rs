//! The sandbox's control loop: what makes a sandbox behave like a cluster rather than a
//! store. A background task wakes on store changes (the store's event broadcast), on a
//! short tick and when a volume copy finishes, and runs the controllers one after the
//! other, each under the cluster lock for one short critical section.
//!
//! A pass runs only the controllers with something to look at, each only where it must
//! look (`changes.rs`): a controller declares the kinds it reads, and a change to one of
//! them puts the object's namespace in its scope; the time-driven ones (CronJob schedules,
//! pods finishing a moment after they start, the kubelet) also look everywhere on the
//! tick. So a burst of writes to a cluster of many objects costs the controllers what the
//! burst touched, not what the cluster holds.
//!
//! Controllers write only through the `Cluster` verbs (create, update, status, delete), so
//! watchers see every change with its resourceVersion, and they are level-based: each run
//! reads the objects as they are and moves them one step towards what they should be, so
//! a sandbox restarted from its state file simply carries on (its first pass looks
//! everywhere, as does a pass after the change stream lagged).
//!
//! - this file: the task, the node set-up, and helpers the controllers share;
//! - `workloads.rs`: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs;
//! - `scheduler.rs`: where pods go; `autoscaler.rs`: nodes added for pods none takes;
//! - `pods.rs`: pod status (a kubelet that pretends), Endpoints;
//! - `storage.rs`: StorageClasses, the provisioner, binding, expansion, snapshots.
//!
//! Owns the background task and the controllers' shared vocabulary. Must not hold the
//! cluster lock across I/O longer than creating a folder: volume copies run outside it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::{JoinHandle, JoinSet};

use super::changes::{Kind, Pending, Scope};
use super::resources::ResourceInfo;
use super::server::Shared;
use super::store::Event;
use super::verbs::{ApiError, ApiResult, Cluster, DeleteOptions, Sub, now};
use super::{SandboxConfig, pods, satokens, scheduler, storage, workloads};

/// How often the controllers run when nothing changes (Job pods finishing, CronJobs).
const TICK: Duration = Duration::from_millis(500);
/// How long to gather a burst of changes before a pass.
const DEBOUNCE: Duration = Duration::from_millis(10);

/// Label of a node that runs the control plane; pods avoid it when workers exist.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Creates the worker nodes and the storage and snapshot classes `config` asks for, when
/// they are missing. Runs once at start, before the sandbox serves.
pub fn install(cluster: &mut Cluster, config: &SandboxConfig) -> ApiResult<()> {
    for i in 0..config.workers {
        let suffix = worker_suffix(i);
        let name = format!("{}-worker-{suffix}", cluster.name);
        if get(cluster, "", "nodes", None, &name).is_some() {
            continue;
        }
        let zone = format!("ferry-local-{}-{suffix}", cluster.name);
        let ip = format!("172.18.{}.{}", i / 250, i % 250 + 2);
        let node = json!({
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "ferry.sandbox",
                "topology.kubernetes.io/region": "ferry-local",
                "topology.kubernetes.io/zone": zone,
            }},
            "spec": {"podCIDR": format!("10.244.{}.0/24", i + 1), "podCIDRs": [format!("10.244.{}.0/24", i + 1)]},
            "status": {
                "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "ferry sandbox node", "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "containerRuntimeVersion": "ferry://sandbox",
                             "operatingSystem": "linux", "architecture": "amd64", "osImage": "Ferry sandbox",
                             "kernelVersion": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}
            }
        });
        create(cluster, "", "nodes", None, node)?;
    }
    storage::install(cluster, &config.storage_classes, &config.snapshot_classes)?;
    // What every cluster has (the two system priority classes), and the class of the
    // ingress controller a typical cluster runs.
    let priority = |name: &str, value: u64, description: &str| {
        json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
            "preemptionPolicy": "PreemptLowerPriority",
        })
    };
    let builtins = [
        (
            "scheduling.k8s.io",
            "priorityclasses",
            priority(
                "system-cluster-critical",
                2_000_000_000,
                "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
            ),
        ),
        (
            "scheduling.k8s.io",
            "priorityclasses",
            priority(
                "system-node-critical",
                2_000_001_000,
                "Used for system critical pods that must not be moved from their current node.",
            ),
        ),
        (
            "networking.k8s.io",
            "ingressclasses",
            json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "k8s.io/ingress-nginx"}}),
        ),
    ];
    for (group, plural, obj) in builtins {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if get(cluster, group, plural, None, &name).is_none() {
            create(cluster, group, plural, None, obj)?;
        }
    }
    Ok(())
}

fn worker_suffix(i: usize) -> String {
    if i < 26 {
        char::from(b'a' + i as u8).to_string()
    } else {
        i.to_string()
    }
}

/// A controller of the loop: the kinds it reads, when it runs, and its run.
struct Controller {
    /// What it is, for logs.
    name: &'static str,
    /// The kinds whose changes give it something to do. A change to one of them puts the
    /// object's namespace in its scope (see `changes.rs`).
    reads: &'static [Kind],
    /// Whether time alone changes what it does (schedules, start delays, work outside the
    /// store): it then also runs on every tick, everywhere.
    timed: bool,
    /// Whether a volume copy finishing changes what it does.
    after_copies: bool,
    /// Looks at the objects within the scope (a controller of a cluster-scoped kind
    /// looks at all of them whenever it runs); adds the volume copies it wants; returns
    /// true when it failed on some object, to be run again, everywhere, on the next tick.
    run: fn(&Arc<Shared>, &Scope, &mut Vec<storage::Copy>) -> bool,
}

const PODS: Kind = ("", "pods");
const NODES: Kind = ("", "nodes");
const CLAIMS: Kind = ("", "persistentvolumeclaims");
const VOLUMES: Kind = ("", "persistentvolumes");
const CLASSES: Kind = ("storage.k8s.io", "storageclasses");
const SNAPSHOTS: Kind = ("snapshot.storage.k8s.io", "volumesnapshots");
const CONTENTS: Kind = ("snapshot.storage.k8s.io", "volumesnapshotcontents");
const SNAPSHOT_CLASSES: Kind = ("snapshot.storage.k8s.io", "volumesnapshotclasses");
const REPLICA_SETS: Kind = ("apps", "replicasets");
const JOBS: Kind = ("batch", "jobs");

/// The controllers, in the order a pass runs them: a later one sees what an earlier one
/// wrote in the same pass.
const CONTROLLERS: &[Controller] = &[
    Controller {
        name: "cronjobs",
        reads: &[("batch", "cronjobs"), JOBS],
        timed: true,
        after_copies: false,
        run: |s, scope, _| workloads::cron_jobs(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "deployments",
        reads: &[("apps", "deployments"), REPLICA_SETS],
        timed: false,
        after_copies: false,
        run: |s, scope, _| workloads::deployments(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "replicasets",
        reads: &[REPLICA_SETS, PODS],
        timed: false,
        after_copies: false,
        run: |s, scope, _| workloads::replica_sets(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "statefulsets",
        reads: &[("apps", "statefulsets"), PODS, CLAIMS],
        timed: false,
        after_copies: false,
        run: |s, scope, _| workloads::stateful_sets(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "daemonsets",
        reads: &[("apps", "daemonsets"), PODS, NODES],
        timed: false,
        after_copies: false,
        run: |s, scope, _| workloads::daemon_sets(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "jobs",
        reads: &[JOBS, PODS],
        timed: false,
        after_copies: false,
        run: |s, scope, _| workloads::jobs(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "scheduler",
        reads: &[PODS, NODES, CLAIMS, VOLUMES, CLASSES],
        timed: false,
        after_copies: false,
        run: |s, scope, _| scheduler::schedule(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "cluster-autoscaler",
        reads: &[PODS, NODES],
        // Pools declared after a pod went unschedulable are looked at on the tick.
        timed: true,
        after_copies: false,
        run: |s, scope, _| super::autoscaler::scale_up(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "pod status",
        reads: &[PODS, NODES, CLAIMS, CLASSES],
        timed: true,
        after_copies: false,
        run: |s, scope, _| pods::run(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "service account tokens",
        reads: &[("", "secrets"), ("", "serviceaccounts")],
        timed: false,
        after_copies: false,
        run: |s, scope, _| satokens::fill_secrets(&mut s.cluster.lock(), scope),
    },
    Controller {
        name: "kubelet",
        // Starting a pod also reads its volumes, ConfigMaps and Secrets: a start that
        // could not be planned is tried again on the tick.
        reads: &[PODS],
        timed: true,
        after_copies: false,
        run: |s, _, _| {
            super::kubelet::sync(s);
            false
        },
    },
    Controller {
        name: "claims",
        reads: &[CLAIMS, VOLUMES, CLASSES, NODES, SNAPSHOTS, CONTENTS],
        timed: false,
        after_copies: true,
        run: |s, scope, copies| storage::claims(&mut s.cluster.lock(), scope, copies),
    },
    Controller {
        name: "volumes",
        reads: &[VOLUMES, CLAIMS],
        timed: false,
        after_copies: false,
        run: |s, _, _| storage::volumes(&mut s.cluster.lock()),
    },
    Controller {
        name: "snapshots",
        reads: &[SNAPSHOTS, CONTENTS, SNAPSHOT_CLASSES, CLAIMS, VOLUMES],
        timed: false,
        after_copies: true,
        run: |s, scope, copies| storage::snapshots(&mut s.cluster.lock(), scope, copies),
    },
    Controller {
        name: "endpoints",
        reads: &[("", "services"), ("", "endpoints"), PODS],
        timed: false,
        after_copies: false,
        run: |s, scope, _| pods::endpoints(&mut s.cluster.lock(), scope),
    },
];

/// The loop's memory between passes: what each controller has to look at, which failed
/// and waits for the tick, and when the tick is due.
struct Work {
    pending: Pending,
    failed: Vec<bool>,
    next_tick: Instant,
}

impl Work {
    fn new() -> Work {
        Work {
            pending: Pending::new(CONTROLLERS.iter().map(|c| c.reads).collect()),
            failed: vec![false; CONTROLLERS.len()],
            next_tick: Instant::now() + TICK,
        }
    }

    /// Takes one change (or the news that changes were missed) from the stream.
    fn receive(&mut self, r: Result<Arc<Event>, RecvError>) {
        match r {
            Ok(e) => self.pending.changed(&e.key),
            Err(RecvError::Lagged(_)) => self.pending.everything(),
            // The loop ends on it (`spawn`).
            Err(RecvError::Closed) => {}
        }
    }

    /// Takes every change the stream holds, without waiting.
    fn drain(&mut self, changes: &mut Receiver<Arc<Event>>) {
        loop {
            match changes.try_recv() {
                Ok(e) => self.pending.changed(&e.key),
                Err(TryRecvError::Lagged(_)) => self.pending.everything(),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
    }

    /// When the tick is due: the timed controllers, and those that failed, look everywhere.
    fn tick_if_due(&mut self) {
        let now = Instant::now();
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK;
        for (i, c) in CONTROLLERS.iter().enumerate() {
            if c.timed || std::mem::take(&mut self.failed[i]) {
                self.pending.everywhere(i);
            }
        }
    }

    /// A volume copy finished: the controllers waiting for copies look everywhere.
    fn copied(&mut self) {
        for (i, c) in CONTROLLERS.iter().enumerate() {
            if c.after_copies {
                self.pending.everywhere(i);
            }
        }
    }
}

/// Starts the control loop; it ends when `stop` turns true, after waiting for the volume
/// copies under way.
pub fn spawn(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Subscribed before the first pass, which looks everywhere: no change is missed.
        let mut changes = shared.cluster.lock().store.subscribe(u64::MAX).0;
        let mut work = Work::new();
        let mut copies: JoinSet<PathBuf> = JoinSet::new();
        let mut in_flight: HashSet<PathBuf> = HashSet::new();
        loop {
            work.drain(&mut changes);
            work.tick_if_due();
            for copy in pass(&shared, &mut work, &mut changes) {
                if in_flight.insert(copy.to.clone()) {
                    copies.spawn_blocking(move || {
                        if let Err(e) = storage::copy_volume(&copy.from, &copy.to) {
                            tracing::warn!(
                                "sandbox volume copy {} -> {} failed: {e}",
                                copy.from.display(),
                                copy.to.display()
                            );
                        }
                        copy.to
                    });
                }
            }
            while let Some(done) = copies.try_join_next() {
                if let Ok(to) = done {
                    in_flight.remove(&to);
                }
                work.copied();
            }
            // Controllers whose own writes (or those of another controller later in the
            // pass) gave them more to look at go again after the debounce; otherwise wait.
            if work.pending.is_clean() {
                let tick = tokio::time::Instant::from_std(work.next_tick);
                tokio::select! {
                    _ = stop.changed() => break,
                    r = changes.recv() => {
                        if matches!(r, Err(RecvError::Closed)) {
                            break;
                        }
                        work.receive(r);
                    }
                    Some(done) = copies.join_next(), if !copies.is_empty() => {
                        if let Ok(to) = done {
                            in_flight.remove(&to);
                        }
                        work.copied();
                    }
                    _ = tokio::time::sleep_until(tick) => {}
                }
            }
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(DEBOUNCE) => {}
            }
        }
        while copies.join_next().await.is_some() {}
    })
}

/// One pass: each controller with something to look at runs once, within its scope.
/// Returns the volume copies the storage controllers want.
fn pass(
    shared: &Arc<Shared>,
    work: &mut Work,
    changes: &mut Receiver<Arc<Event>>,
) -> Vec<storage::Copy> {
    let mut copies = Vec::new();
    for (i, controller) in CONTROLLERS.iter().enumerate() {
        // What the controllers before it just wrote.
        work.drain(changes);
        let scope = work.pending.take(i);
        if scope.is_clean() {
            continue;
        }
        if (controller.run)(shared, &scope, &mut copies) {
            tracing::debug!(
                "sandbox controller {} failed on some object; it tries again on the tick",
                controller.name
            );
            work.failed[i] = true;
        }
    }
    // Warnings are for clients: the controllers' own writes have none to give.
    shared.cluster.lock().warnings.borrow_mut().clear();
    copies
}

/// Logs a controller's failure on one object; returns whether there was one (the
/// controller reports it, and the loop tries it again on the next tick).
pub fn log_err(what: &str, r: ApiResult<()>) -> bool {
    match r {
        Ok(()) => false,
        Err(e) => {
            tracing::debug!("sandbox controller: {what}: {}", e.message);
            true
        }
    }
}

/// The served resource for `group` and `plural` (all the types controllers touch are v1).
pub fn info(c: &Cluster, group: &str, plural: &str) -> ApiResult<ResourceInfo> {
    c.info(group, "v1", plural).ok_or_else(|| {
        ApiError::new(
            500,
            "InternalError",
            format!("the sandbox does not serve {plural}.{group}"),
        )
    })
}

/// Copies of the objects of a type, in one namespace or all, that `keep` selects: the
/// filter sees them by reference, so that only what a controller works on is copied.
pub fn list(
    c: &Cluster,
    group: &str,
    plural: &str,
    ns: Option<&str>,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    c.store
        .list(group, plural, ns)
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .cloned()
        .collect()
}

/// Copies of the objects of a type within `scope` that `keep` selects (by reference).
pub fn in_scope(
    c: &Cluster,
    scope: &Scope,
    group: &str,
    plural: &str,
    keep: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    scope
        .objects(&c.store, group, plural)
        .filter(|v| keep(v))
        .cloned()
        .collect()
}

pub fn get(c: &Cluster, group: &str, plural: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    c.store
        .get(&super::store::Key::new(
            group,
            plural,
            ns.unwrap_or(""),
            name,
        ))
        .cloned()
}

pub fn create(
    c: &mut Cluster,
    group: &str,
    plural: &str,
    ns: Option<&str>,
    obj: Value,
) -> ApiResult<Value> {
    let info = info(c, group, plural)?;
    c.create(&info, ns, obj)
}

/// Replaces an object (its spec and metadata); a no-op when nothing changed.
pub fn update(c: &mut Cluster, group: &str, plural: &str, obj: Value) -> ApiResult<Value> {
    let info = info(c, group, plural)?;
    let ns = ns_of(&obj).map(str::to_string);
    c.update(&info, ns.as_deref(), name_of(&obj), Sub::Main, obj.clone())
}

/// Writes `status` through the status subresource; a no-op when it is unchanged.
pub fn set_status(
    c: &mut Cluster,
    group: &str,
    plural: &str,
    obj: &Value,
    status: Value,
) -> ApiResult<Value> {
    if obj["status"] == status {
        return Ok(obj.clone());
    }
    let info = info(c, group, plural)?;
    let mut body = obj.clone();
    body["status"] = status;
    if let Some(m) = body["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let ns = ns_of(obj).map(str::to_string);
    c.update(&info, ns.as_deref(), name_of(obj), Sub::Status, body)
}

pub fn delete(c: &mut Cluster, group: &str, plural: &str, obj: &Value) -> ApiResult<()> {
    let info = info(c, group, plural)?;
    let ns = ns_of(obj).map(str::to_string);
    let opts = DeleteOptions {
        propagation: Some("Background".into()),
        precondition_uid: Some(uid_of(obj).to_string()),
        precondition_rv: None,
    };
    match c.delete(&info, ns.as_deref(), name_of(obj), &opts) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

pub fn uid_of(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

pub fn ns_of(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"]
        .as_str()
        .filter(|s| !s.is_empty())
}

pub fn deleting(obj: &Value) -> bool {
    obj["metadata"]["deletionTimestamp"].is_string()
}

/// An ownerReference to `owner` marking it as the controller.
pub fn controller_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    }])
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r["uid"].as_str() == Some(uid) && r["controller"].as_bool().unwrap_or(false)
            })
        })
}

/// Whether `labels` satisfy a LabelSelector object (matchLabels and matchExpressions).
/// An empty or missing selector matches nothing, as for workloads.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let ml = selector["matchLabels"].as_object();
    let me = selector["matchExpressions"].as_array();
    if ml.is_none_or(|m| m.is_empty()) && me.is_none_or(|e| e.is_empty()) {
        return false;
    }
    let label = |k: &str| -> Option<&str> { labels.get(k).and_then(Value::as_str) };
    let labels_ok = ml.is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    labels_ok && me.is_none_or(|exprs| exprs.iter().all(|e| expression_matches(e, label)))
}

/// One `{key, operator, values}` requirement against a label lookup.
pub fn expression_matches<'a>(e: &Value, label: impl Fn(&str) -> Option<&'a str>) -> bool {
    let key = e["key"].as_str().unwrap_or("");
    let values: Vec<&str> = e["values"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let v = label(key);
    match e["operator"].as_str().unwrap_or("") {
        "In" => v.is_some_and(|v| values.contains(&v)),
        "NotIn" => v.is_none_or(|v| !values.contains(&v)),
        "Exists" => v.is_some(),
        "DoesNotExist" => v.is_none(),
        "Gt" | "Lt" => {
            let (Some(a), Some(b)) = (
                v.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if e["operator"] == "Gt" { a > b } else { a < b }
        }
        _ => false,
    }
}

/// A status condition, keeping `lastTransitionTime` (and `lastUpdateTime` when
/// `update_time`) from the previous condition of that type when nothing changed, so that a
/// pass that changes nothing writes nothing.
pub fn condition(
    previous: &Value,
    ty: &str,
    status: &str,
    reason: &str,
    message: &str,
    update_time: bool,
) -> Value {
    let old = previous
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty));
    let same_status = old.is_some_and(|o| o["status"] == status);
    let same_all =
        same_status && old.is_some_and(|o| o["reason"] == reason && o["message"] == message);
    let keep = |field: &str, same: bool| match old {
        Some(o) if same && o[field].is_string() => o[field].clone(),
        _ => json!(now()),
    };
    let mut c = json!({"type": ty, "status": status, "lastTransitionTime": keep("lastTransitionTime", same_status)});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    if update_time {
        c["lastUpdateTime"] = keep("lastUpdateTime", same_all);
    }
    c
}

/// Seconds since an RFC 3339 time, or None when it is missing or unreadable.
pub fn age_seconds(t: &Value) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(t.as_str()?).ok()?;
    Some((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

/// Records a core/v1 Event about `obj`: said again, the same reason and message are
/// counted on the first (`count`, `lastTimestamp`), at most every 10 s.
pub fn event(c: &mut Cluster, obj: &Value, kind: &str, reason: &str, message: &str) {
    let ns = ns_of(obj).unwrap_or("default").to_string();
    let uid = uid_of(obj);
    let t = now();
    let seen = c
        .store
        .list("", "events", Some(&ns))
        .find(|(_, e)| {
            e["involvedObject"]["uid"] == uid && e["reason"] == reason && e["message"] == message
        })
        .map(|(_, e)| e.clone());
    if let Some(mut e) = seen {
        // Said again: counted, as client-go's event correlator does, at most every
        // 10 s (a controller that says it on every tick would otherwise write forever).
        if age_seconds(&e["lastTimestamp"]).is_none_or(|s| s >= 10) {
            e["lastTimestamp"] = json!(t);
            e["count"] = json!(e["count"].as_u64().unwrap_or(1) + 1);
            let _ = log_err("event", update(c, "", "events", e).map(|_| ()));
        }
        return;
    }
    let mut suffix = [0u8; 8];
    let _ = getrandom::fill(&mut suffix);
    let ev = json!({
        "metadata": {"name": format!("{}.{}", name_of(obj), hex::encode(suffix))},
        "involvedObject": {
            "apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"], "uid": uid,
            "resourceVersion": obj["metadata"]["resourceVersion"],
        },
        "reason": reason, "message": message, "type": kind,
        "source": {"component": component_for(reason)},
        "reportingComponent": component_for(reason), "reportingInstance": "ferry-sandbox",
        "firstTimestamp": t, "lastTimestamp": t, "count": 1,
    });
    // An event that cannot be recorded is no reason to run the controller again.
    let _ = log_err("event", create(c, "", "events", Some(&ns), ev).map(|_| ()));
}

fn component_for(reason: &str) -> &'static str {
    match reason {
        "ProvisioningFailed"
        | "ProvisioningSucceeded"
        | "Provisioning"
        | "ExternalProvisioning" => "persistentvolume-controller",
        "WaitForFirstConsumer" | "VolumeResizeFailed" | "Resizing" => "persistentvolume-controller",
        "FailedScheduling" | "Scheduled" => "default-scheduler",
        "TriggeredScaleUp" | "NotTriggerScaleUp" => "cluster-autoscaler",
        "SuccessfulCreate" | "SuccessfulDelete" | "ScalingReplicaSet" | "Completed" => {
            "controller-manager"
        }
        "Pulled" | "Created" | "Started" => "kubelet",
        _ => "ferry-sandbox",
    }
}

/// A short, stable hash of a JSON value (key order does not matter), written with the
/// alphabet Kubernetes uses for generated names.
pub fn stable_hash(v: &Value) -> String {
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    canon(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    canon(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canon(v, &mut s);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    blake3::hash(s.as_bytes()).as_bytes()[..10]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_hashes() {
        let labels = json!({"app": "web", "tier": "front"});
        assert!(selector_matches(
            &json!({"matchLabels": {"app": "web"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "db"}}),
            &labels
        ));
        assert!(!selector_matches(&json!({}), &labels));
        let expr = json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]},
                                               {"key": "gone", "operator": "DoesNotExist"}]});
        assert!(selector_matches(&expr, &labels));
        assert_eq!(
            stable_hash(&json!({"a": 1, "b": [1, 2]})),
            stable_hash(&json!({"b": [1, 2], "a": 1}))
        );
        assert_ne!(stable_hash(&json!({"a": 1})), stable_hash(&json!({"a": 2})));
    }

    #[test]
    fn conditions_keep_their_times_when_unchanged() {
        let old = json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z",
                          "lastUpdateTime": "2020-01-01T00:00:00Z", "reason": "R", "message": "m"}]);
        let same = condition(&old, "Ready", "True", "R", "m", true);
        assert_eq!(same["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(same["lastUpdateTime"], "2020-01-01T00:00:00Z");
        let changed = condition(&old, "Ready", "False", "R", "m", false);
        assert_ne!(changed["lastTransitionTime"], "2020-01-01T00:00:00Z");
    }
}

//! What a job creates in a cluster for its own use (mover pods, temporary claims, CSI
//! snapshots), whose it is, and the cleanup of what dead jobs left behind.
//!
//! Every such object carries [`MANAGED_BY`], `ferry.dev/temporary=true` and the job's
//! ID (`ferry.dev/job`). A job holds a `coordination.k8s.io/v1` Lease named
//! `ferry-job-<id>` in each namespace where it creates them, renewed every
//! [`RENEW_EVERY`] while it runs and deleted when it ends. A job is dead when its lease
//! is gone, has not been renewed for [`DEAD_AFTER`], names a process of this machine
//! that no longer runs (a killed job on this laptop is cleaned up at once), or belongs
//! to a job of this process that ended without reaching the cluster to delete it. Only dead
//! jobs' objects are ever removed: two jobs in one namespace leave each other alone.
//!
//! [`sweep`] runs at the start of every capture and restore on the cluster, and as
//! `ferry cleanup --context C`. A capture never reads these objects (see
//! [`is_temporary`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::objects::{is_forbidden, is_not_found};
use super::{K8sError, MANAGED_BY, Result};

/// Label: the object is a job's temporary (`"true"`).
pub const TEMPORARY_LABEL: &str = "ferry.dev/temporary";
/// Label: the ID of the job that created the object.
pub const JOB_LABEL: &str = "ferry.dev/job";
/// Label: what the object is for (`mover`, `snapshot`, `snapshot-claim`, `lease`).
pub const ROLE_LABEL: &str = "ferry.dev/role";
/// How often a running job renews its leases.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The lease duration a job announces.
const LEASE_SECS: i64 = 30;
/// A lease not renewed for this long belongs to a dead job (three renewals missed,
/// with room for clocks that disagree).
pub const DEAD_AFTER: Duration = Duration::from_secs(90);
/// Objects from before job labels existed are taken as leftovers past this age.
const LEGACY_AFTER: Duration = Duration::from_secs(600);

/// Whether a listed object is one of Ferry's own temporaries (never captured).
pub fn is_temporary(o: &Value) -> bool {
    let labels = &o["metadata"]["labels"];
    labels[MANAGED_BY.0].as_str() == Some(MANAGED_BY.1)
        || labels[TEMPORARY_LABEL].as_str() == Some("true")
}

/// A running job's hold on the namespaces where it creates objects.
pub struct JobLease {
    id: String,
    holder: String,
    client: kube::Client,
    held: Arc<Mutex<BTreeSet<String>>>,
    renewer: tokio::task::JoinHandle<()>,
    limit: Duration,
}

impl JobLease {
    /// A new job on the cluster `client` talks to; `limit` bounds each request.
    pub fn start(client: &kube::Client, limit: Duration) -> JobLease {
        let id = new_id();
        let held: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let renewer = {
            let client = client.clone();
            let held = held.clone();
            let id = id.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let namespaces: Vec<String> = held.lock().iter().cloned().collect();
                    for ns in namespaces {
                        let api: Api<Lease> = Api::namespaced(client.clone(), &ns);
                        let patch = json!({"spec": {"renewTime": micro_time(chrono::Utc::now())}});
                        let r = tokio::time::timeout(
                            limit,
                            api.patch(
                                &lease_name(&id),
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            ),
                        )
                        .await;
                        if !matches!(r, Ok(Ok(_))) {
                            tracing::warn!(job = %id, ns, "cannot renew the job's lease");
                        }
                    }
                }
            })
        };
        JobLease {
            holder: holder(),
            id,
            client: client.clone(),
            held,
            renewer,
            limit,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The labels of an object this job creates for `role`.
    pub fn labels(&self, role: &str) -> Value {
        json!({
            MANAGED_BY.0: MANAGED_BY.1,
            TEMPORARY_LABEL: "true",
            JOB_LABEL: self.id,
            ROLE_LABEL: role,
        })
    }

    /// Takes the lease in `ns` (once) before the job creates anything there.
    pub async fn hold(&self, ns: &str) -> Result<()> {
        if self.held.lock().contains(ns) {
            return Ok(());
        }
        let api: Api<Lease> = Api::namespaced(self.client.clone(), ns);
        let now = micro_time(chrono::Utc::now());
        let lease: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": lease_name(&self.id), "namespace": ns, "labels": self.labels("lease")},
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": LEASE_SECS,
                "acquireTime": now,
                "renewTime": now,
            },
        }))
        .map_err(|e| K8sError::Invalid(format!("job lease: {e}")))?;
        let created = tokio::time::timeout(self.limit, api.create(&PostParams::default(), &lease))
            .await
            .map_err(|_| K8sError::Unreachable {
                what: format!("creating the job's lease in {ns}"),
                secs: self.limit.as_secs(),
            })?;
        match created {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(K8sError::api(
                    format!(
                        "cannot create the job's lease {} in {ns} (Ferry needs to create, patch and delete coordination.k8s.io leases there)",
                        lease_name(&self.id)
                    ),
                    &e,
                ));
            }
        }
        self.held.lock().insert(ns.to_string());
        Ok(())
    }

    /// Ends the job: stops renewing and deletes its leases. Its objects must be gone
    /// by now; anything left is a dead job's leftover for the next [`sweep`].
    pub async fn release(self) {
        self.renewer.abort();
        ended().lock().insert(self.id.clone());
        let namespaces: Vec<String> = self.held.lock().iter().cloned().collect();
        for ns in namespaces {
            let api: Api<Lease> = Api::namespaced(self.client.clone(), &ns);
            let r = tokio::time::timeout(
                self.limit,
                api.delete(&lease_name(&self.id), &DeleteParams::default()),
            )
            .await;
            if !matches!(r, Ok(Ok(_)) | Ok(Err(kube::Error::Api(_)))) {
                tracing::warn!(job = %self.id, ns, "the job's lease was not deleted");
            }
        }
    }
}

impl std::fmt::Debug for JobLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLease")
            .field("id", &self.id)
            .field("holder", &self.holder)
            .field("held", &*self.held.lock())
            .finish()
    }
}

impl Drop for JobLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Jobs of this process that have ended: their leases, if a delete failed, are dead.
fn ended() -> &'static Mutex<BTreeSet<String>> {
    static ENDED: std::sync::OnceLock<Mutex<BTreeSet<String>>> = std::sync::OnceLock::new();
    ENDED.get_or_init(Mutex::default)
}

fn lease_name(id: &str) -> String {
    format!("ferry-job-{id}")
}

fn new_id() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

/// Who holds a lease: `ferry@<host>/<pid>`.
fn holder() -> String {
    format!("ferry@{}/{}", ferry_repo::hostname(), std::process::id())
}

fn micro_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Whether the job whose lease is `lease` (a document) still runs at `now`.
pub fn alive(lease: &Value, now: chrono::DateTime<chrono::Utc>) -> bool {
    let spec = &lease["spec"];
    if let Some((host, pid)) = spec["holderIdentity"]
        .as_str()
        .and_then(|h| h.strip_prefix("ferry@"))
        .and_then(|h| h.rsplit_once('/'))
        && host == ferry_repo::hostname()
        && let Ok(pid) = pid.parse::<i32>()
    {
        if !process_runs(pid) {
            return false;
        }
        // A job of this very process that ended, whose lease could not be deleted.
        let job = lease["metadata"]["labels"][JOB_LABEL]
            .as_str()
            .unwrap_or("");
        if i64::from(pid) == i64::from(std::process::id()) && ended().lock().contains(job) {
            return false;
        }
    }
    let renewed = spec["renewTime"]
        .as_str()
        .or(spec["acquireTime"].as_str())
        .or(lease["metadata"]["creationTimestamp"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let Some(renewed) = renewed else {
        return false;
    };
    let dead_after = chrono::Duration::from_std(DEAD_AFTER).unwrap_or_default();
    now.signed_duration_since(renewed.with_timezone(&chrono::Utc)) < dead_after
}

fn process_runs(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// One object found by a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// The job that created it (empty for objects from before job labels).
    pub job: String,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)?;
        if !self.job.is_empty() {
            write!(f, " (job {})", self.job)?;
        }
        Ok(())
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone)]
pub struct Swept {
    /// Dead jobs' objects, deleted (or, in a dry run, to delete).
    pub removed: Vec<Found>,
    /// Objects of jobs that still run, left alone.
    pub kept: Vec<Found>,
    /// What could not be listed or deleted, in words.
    pub problems: Vec<String>,
}

const SNAPSHOTS: (&str, &str, &str) = ("snapshot.storage.k8s.io", "v1", "VolumeSnapshot");

/// The served `VolumeSnapshot` resource (snapshot.storage.k8s.io/v1).
pub(crate) fn snapshot_resource() -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: SNAPSHOTS.0.into(),
        version: SNAPSHOTS.1.into(),
        api_version: format!("{}/{}", SNAPSHOTS.0, SNAPSHOTS.1),
        kind: SNAPSHOTS.2.into(),
        plural: "volumesnapshots".into(),
    }
}

/// Lists one kind of temporaries: the whole cluster, or `namespaces` when the
/// cluster-wide list is forbidden.
async fn list_kind(
    client: &kube::Client,
    kind: &'static str,
    namespaces: &[String],
    limit: Duration,
    problems: &mut Vec<String>,
) -> Vec<Value> {
    let lp = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let list = |ns: Option<&str>| {
        let client = client.clone();
        let lp = lp.clone();
        let ns = ns.map(str::to_string);
        async move {
            let r: std::result::Result<Vec<Value>, kube::Error> = match kind {
                "Pod" => {
                    let api: Api<Pod> = match &ns {
                        Some(n) => Api::namespaced(client, n),
                        None => Api::all(client),
                    };
                    api.list(&lp).await.map(|l| to_values(l.items))
                }
                "PersistentVolumeClaim" => {
                    let api: Api<PersistentVolumeClaim> = match &ns {
                        Some(n) => Api::namespaced(client, n),
                        None => Api::all(client),
                    };
                    api.list(&lp).await.map(|l| to_values(l.items))
                }
                "Lease" => {
                    let api: Api<Lease> = match &ns {
                        Some(n) => Api::namespaced(client, n),
                        None => Api::all(client),
                    };
                    api.list(&lp).await.map(|l| to_values(l.items))
                }
                "Job" => {
                    let api: Api<k8s_openapi::api::batch::v1::Job> = match &ns {
                        Some(n) => Api::namespaced(client, n),
                        None => Api::all(client),
                    };
                    api.list(&lp).await.map(|l| to_values(l.items))
                }
                "Secret" => {
                    let api: Api<k8s_openapi::api::core::v1::Secret> = match &ns {
                        Some(n) => Api::namespaced(client, n),
                        None => Api::all(client),
                    };
                    api.list(&lp).await.map(|l| to_values(l.items))
                }
                _ => {
                    let res = snapshot_resource();
                    let api: Api<DynamicObject> = match &ns {
                        Some(n) => Api::namespaced_with(client, n, &res),
                        None => Api::all_with(client, &res),
                    };
                    api.list(&lp).await.map(|l| to_values(l.items))
                }
            };
            r
        }
    };
    match tokio::time::timeout(limit, list(None)).await {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) if is_not_found(&e) => return Vec::new(),
        Ok(Err(e)) if is_forbidden(&e) => {}
        Ok(Err(e)) => {
            problems.push(format!(
                "cannot list {kind}s: {}",
                crate::cluster::explain(&e)
            ));
            return Vec::new();
        }
        Err(_) => {
            problems.push(format!(
                "cannot list {kind}s: the cluster did not answer within {} s",
                limit.as_secs()
            ));
            return Vec::new();
        }
    }
    let mut out = Vec::new();
    for ns in namespaces {
        match tokio::time::timeout(limit, list(Some(ns))).await {
            Ok(Ok(v)) => out.extend(v),
            Ok(Err(e)) if is_not_found(&e) => {}
            Ok(Err(e)) => problems.push(format!(
                "cannot list {kind}s in {ns}: {}",
                crate::cluster::explain(&e)
            )),
            Err(_) => problems.push(format!(
                "cannot list {kind}s in {ns}: the cluster did not answer within {} s",
                limit.as_secs()
            )),
        }
    }
    out
}

fn to_values<T: serde::Serialize>(items: Vec<T>) -> Vec<Value> {
    items
        .into_iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect()
}

/// Finds the temporaries of dead jobs on the cluster (everywhere it may list, else in
/// `namespaces`) and deletes them unless `dry_run`. Never fails: what it could not do
/// is in [`Swept::problems`].
pub async fn sweep(
    client: &kube::Client,
    namespaces: &[String],
    dry_run: bool,
    limit: Duration,
) -> Swept {
    let mut out = Swept::default();
    let now = chrono::Utc::now();
    let leases = list_kind(client, "Lease", namespaces, limit, &mut out.problems).await;
    // (namespace, job) → alive
    let mut jobs: BTreeMap<(String, String), bool> = BTreeMap::new();
    for l in &leases {
        if let Some(job) = l["metadata"]["labels"][JOB_LABEL].as_str() {
            let ns = l["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            jobs.insert((ns, job.to_string()), alive(l, now));
        }
    }
    let mut doomed: Vec<(Found, Value)> = Vec::new();
    for kind in ["Job", "Pod", "Secret", "PersistentVolumeClaim", SNAPSHOTS.2] {
        for o in list_kind(client, kind, namespaces, limit, &mut out.problems).await {
            let meta = &o["metadata"];
            let found = Found {
                kind,
                namespace: meta["namespace"].as_str().unwrap_or("").to_string(),
                name: meta["name"].as_str().unwrap_or("").to_string(),
                job: meta["labels"][JOB_LABEL].as_str().unwrap_or("").to_string(),
            };
            let dead = if found.job.is_empty() {
                // Made by a Ferry from before job labels: a leftover once it is old.
                meta["creationTimestamp"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| {
                        now.signed_duration_since(t.with_timezone(&chrono::Utc))
                            > chrono::Duration::from_std(LEGACY_AFTER).unwrap_or_default()
                    })
            } else {
                !jobs
                    .get(&(found.namespace.clone(), found.job.clone()))
                    .copied()
                    .unwrap_or(false)
            };
            if dead {
                doomed.push((found, o));
            } else {
                out.kept.push(found);
            }
        }
    }
    // Leases of dead jobs go last, once their objects are gone.
    for l in leases {
        let meta = &l["metadata"];
        let ns = meta["namespace"].as_str().unwrap_or("").to_string();
        let job = meta["labels"][JOB_LABEL].as_str().unwrap_or("").to_string();
        if !jobs
            .get(&(ns.clone(), job.clone()))
            .copied()
            .unwrap_or(false)
        {
            let found = Found {
                kind: "Lease",
                namespace: ns,
                name: meta["name"].as_str().unwrap_or("").to_string(),
                job,
            };
            doomed.push((found, l));
        }
    }
    for (found, _) in doomed {
        if !dry_run && let Err(why) = delete(client, &found, limit).await {
            out.problems.push(format!("cannot delete {found}: {why}"));
            continue;
        }
        tracing::info!(object = %found, dry_run, "removing a dead job's leftover");
        out.removed.push(found);
    }
    out
}

async fn delete(
    client: &kube::Client,
    f: &Found,
    limit: Duration,
) -> std::result::Result<(), String> {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    let ns = &f.namespace;
    let fut = async {
        match f.kind {
            "Pod" => Api::<Pod>::namespaced(client.clone(), ns)
                .delete(&f.name, &dp)
                .await
                .map(|_| ()),
            "PersistentVolumeClaim" => Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                .delete(&f.name, &dp)
                .await
                .map(|_| ()),
            "Lease" => Api::<Lease>::namespaced(client.clone(), ns)
                .delete(&f.name, &dp)
                .await
                .map(|_| ()),
            // Its pods go with it (an agent's pod of a dead job included).
            "Job" => Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), ns)
                .delete(
                    &f.name,
                    &DeleteParams {
                        propagation_policy: Some(kube::api::PropagationPolicy::Background),
                        ..dp.clone()
                    },
                )
                .await
                .map(|_| ()),
            "Secret" => Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
                .delete(&f.name, &dp)
                .await
                .map(|_| ()),
            _ => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &snapshot_resource())
                .delete(&f.name, &dp)
                .await
                .map(|_| ()),
        }
    };
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_not_found(&e) => Ok(()),
        Ok(Err(e)) => Err(crate::cluster::explain(&e)),
        Err(_) => Err(format!(
            "the cluster did not answer within {} s",
            limit.as_secs()
        )),
    }
}

/// Whether another live job holds a writing mover on `claim` in `ns`: its ID.
pub async fn writer_of(
    client: &kube::Client,
    ns: &str,
    claim: &str,
    me: &str,
    limit: Duration,
) -> Option<String> {
    let mut problems = Vec::new();
    let leases = list_kind(client, "Lease", &[ns.to_string()], limit, &mut problems).await;
    let now = chrono::Utc::now();
    let pods = list_kind(client, "Pod", &[ns.to_string()], limit, &mut problems).await;
    pods.iter()
        .filter(|p| p["metadata"]["namespace"].as_str() == Some(ns))
        .filter(|p| writes_claim(p, claim))
        .filter_map(|p| p["metadata"]["labels"][JOB_LABEL].as_str())
        .filter(|job| *job != me)
        .find(|job| {
            leases.iter().any(|l| {
                l["metadata"]["namespace"].as_str() == Some(ns)
                    && l["metadata"]["labels"][JOB_LABEL].as_str() == Some(job)
                    && alive(l, now)
            })
        })
        .map(str::to_string)
}

fn writes_claim(pod: &Value, claim: &str) -> bool {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| {
            v["persistentVolumeClaim"]["claimName"].as_str() == Some(claim)
                && v["persistentVolumeClaim"]["readOnly"].as_bool() != Some(true)
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn lease(holder: &str, renewed: chrono::DateTime<chrono::Utc>) -> Value {
        json!({"metadata": {"name": "ferry-job-x"},
               "spec": {"holderIdentity": holder, "renewTime": micro_time(renewed)}})
    }

    #[test]
    fn a_lease_lives_while_renewed_and_its_process_runs() {
        let now = chrono::Utc::now();
        let me = holder();
        assert!(alive(&lease(&me, now), now));
        assert!(!alive(
            &lease(&me, now - chrono::Duration::seconds(120)),
            now
        ));
        // Another machine's job: only time tells.
        assert!(alive(
            &lease("ferry@elsewhere/1", now - chrono::Duration::seconds(30)),
            now
        ));
        // A process of this machine that is gone: dead at once.
        let gone = format!("ferry@{}/{}", ferry_repo::hostname(), i32::MAX - 7);
        assert!(!alive(&lease(&gone, now), now));
        // No time at all: dead.
        assert!(!alive(&json!({"spec": {}}), now));
    }

    #[test]
    fn temporaries_are_told_apart_from_workloads() {
        assert!(is_temporary(
            &json!({"metadata": {"labels": {MANAGED_BY.0: MANAGED_BY.1}}})
        ));
        assert!(is_temporary(
            &json!({"metadata": {"labels": {TEMPORARY_LABEL: "true"}}})
        ));
        assert!(!is_temporary(
            &json!({"metadata": {"labels": {MANAGED_BY.0: "Helm"}}})
        ));
        assert!(!is_temporary(&json!({"metadata": {}})));
    }
}

//! Volume data moved inside the cluster: one Kubernetes Job per volume runs Ferry's
//! agent (`ferry-agent`, `src/agent/`) next to the data, and the agent reads, chunks,
//! deduplicates, compresses, encrypts and uploads it into the repository itself (or
//! restores it from there). Ferry only orchestrates: it makes a Secret with the
//! repository's key (and the object store's credentials, unless the pods have an
//! identity of their own), starts the Job, follows its pods' logs for progress
//! (`ferry_repo::agent::AgentLine`), and removes the Job and the Secret however the
//! volume ends.
//!
//! This works only when the cluster can reach the repository: an object store. A local
//! folder keeps the exec path (`mover.rs`); [`DataPath`] is the choice, and
//! [`AgentAccess::of`] says why an agent cannot be used.
//!
//! Owns the agent's Job, Secret and the reading of its reports. Must not decide which
//! volumes move (capture and apply do) nor touch the repository's contents.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{AsyncBufReadExt as _, StreamExt as _};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod why;

use crate::lease::JobLease;
use crate::placement::{NodeWait, Placement, Slot};
use crate::podsec::{self, RunAs};
use crate::{JobProgress, K8sError, Result, within};
use ferry_repo::Repository;
use ferry_repo::agent::{AgentLine, KEY_ENV, VERSION};
use ferry_repo::backend::{RemoteCredentials, RemoteStore};
use why::{
    REFUSED, cannot_start, clip, ended_with, lines, push_tail, refused_version, unschedulable,
};

/// The agent image Ferry uses unless told otherwise: the one built with this version.
pub fn default_image() -> String {
    format!("ghcr.io/ferry-dev/ferry-agent:{VERSION}")
}

/// Where a volume's data goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataPath {
    /// Agents when the repository is an object store, else exec.
    #[default]
    Auto,
    /// Through exec streams to this machine (`mover.rs`).
    Exec,
    /// Through in-cluster agents writing to the repository themselves.
    Agent,
}

impl DataPath {
    pub fn parse(s: &str) -> Option<DataPath> {
        match s {
            "auto" => Some(DataPath::Auto),
            "exec" => Some(DataPath::Exec),
            "agent" => Some(DataPath::Agent),
            _ => None,
        }
    }
}

/// How agents run.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub data_path: DataPath,
    /// The agent image; [`default_image`] unless set.
    pub image: String,
    /// A service account whose identity reaches the object store (IRSA, EKS Pod
    /// Identity, AKS workload identity). When set, no credentials go into the Secret.
    pub service_account: Option<String>,
    /// Volumes moved at once by one job.
    pub per_job: usize,
    /// Volumes moved at once on one node.
    pub per_node: usize,
    /// The agent's container `resources` (requests and limits), as Kubernetes writes
    /// them.
    pub resources: Value,
    /// Times a failed agent is started again before its volume fails (`backoffLimit`).
    pub retries: u32,
    /// How long an agent may wait to be scheduled and started.
    pub start_timeout: Duration,
    /// How long a request may stay unanswered.
    pub stall_timeout: Duration,
    /// The object store's endpoint as pods reach it, where it is not the one this
    /// machine uses (a store port-forwarded here, a MinIO Service in the cluster).
    pub endpoint: Option<String>,
    /// How long an agent tries to reach the store at start before it reports that the
    /// cluster cannot reach it.
    pub reach_timeout: Duration,
    /// How long one storage operation of an agent may retry a transient failure.
    pub retry_budget: Duration,
    /// Job-wide limits in bytes per second, split across the agents that run at once.
    pub limit_upload: Option<u64>,
    pub limit_download: Option<u64>,
    pub limit_read: Option<u64>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            data_path: DataPath::Auto,
            image: default_image(),
            service_account: None,
            per_job: 4,
            per_node: 2,
            resources: json!({
                "requests": {"cpu": "250m", "memory": "256Mi"},
                "limits": {"memory": "1Gi"},
            }),
            retries: 3,
            start_timeout: Duration::from_secs(180),
            stall_timeout: Duration::from_secs(120),
            endpoint: None,
            reach_timeout: Duration::from_secs(30),
            retry_budget: Duration::from_secs(300),
            limit_upload: None,
            limit_download: None,
            limit_read: None,
        }
    }
}

/// What agents need from the repository Ferry opened: where it is, how to get in.
pub struct AgentAccess {
    store: RemoteStore,
    credentials: Option<RemoteCredentials>,
    key: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for AgentAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAccess")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Which data path a job takes, and why (for the plan and the audit record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPathChoice {
    /// `agent` or `exec`.
    pub path: String,
    pub why: String,
}

impl AgentAccess {
    /// The access agents get to `repo` when `opts` and the repository allow agents
    /// (`None`: the exec path, with the reason in the choice). Asking for agents with a
    /// repository a cluster cannot reach is an error.
    pub async fn of(
        repo: &Repository,
        opts: &AgentOptions,
    ) -> Result<(Option<AgentAccess>, DataPathChoice)> {
        let exec = |why: &str| DataPathChoice {
            path: "exec".into(),
            why: why.into(),
        };
        if opts.data_path == DataPath::Exec {
            return Ok((None, exec("asked for (--data-path exec)")));
        }
        let Some(mut store) = repo.backend().remote() else {
            if opts.data_path == DataPath::Agent {
                return Err(K8sError::Invalid(format!(
                    "--data-path agent needs a repository the cluster can reach (s3://…), but {} is a folder on this machine: use an S3 repository, or --data-path exec",
                    repo.location()
                )));
            }
            return Ok((
                None,
                exec("the repository is a folder on this machine, which a cluster cannot reach"),
            ));
        };
        let credentials = if opts.service_account.is_some() {
            None
        } else {
            let backend = repo.backend().clone();
            backend
                .remote_credentials()
                .await
                .map_err(|e| K8sError::Repository(e.into()))?
        };
        if credentials.is_none() && opts.service_account.is_none() {
            return Err(K8sError::Invalid(format!(
                "no credentials to hand to the agents for {}: give the agents a service account with access to the bucket (--agent-service-account), or run Ferry with credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID)",
                store.location
            )));
        }
        let mut why = match &opts.service_account {
            Some(sa) => format!(
                "the repository is an object store ({}); agents reach it as service account {sa}",
                store.location
            ),
            None => format!(
                "the repository is an object store ({}); agents get this session's credentials for the job",
                store.location
            ),
        };
        if let Some(e) = &opts.endpoint {
            why.push_str(&format!(", at {e}"));
            store.endpoint = Some(e.clone());
        }
        let key = repo.key().export();
        Ok((
            Some(AgentAccess {
                store,
                credentials,
                key,
            }),
            DataPathChoice {
                path: "agent".into(),
                why,
            },
        ))
    }
}

/// What one agent does.
#[derive(Debug, Clone)]
pub enum Work {
    /// Store the claim's data; `parent` is the tree of its previous copy;
    /// `from_copy` when the claim is a CSI snapshot's (files compared without inodes).
    Backup {
        parent: Option<ferry_repo::Id>,
        from_copy: bool,
    },
    /// Write the stored folder `tree` into the claim.
    Restore { tree: ferry_repo::Id },
}

/// One volume moved by an agent.
#[derive(Debug)]
pub struct Volume<'a> {
    pub namespace: &'a str,
    /// The claim the agent mounts (a snapshot's claim when reading through one).
    pub claim: &'a str,
    /// The claim as the job's progress names it.
    pub shown: &'a str,
    /// The node to run on (a ReadWriteOnce claim in use there).
    pub node: Option<&'a str>,
    pub work: Work,
    /// Agents running at once in this job (the limits are split among them).
    pub sharing: usize,
    /// The non-root user of the workload that mounts the claim: the agent runs as it
    /// where the namespace's Pod Security refuses root.
    pub user: Option<&'a RunAs>,
    /// Where the pods that use the claim may run (see [`crate::placement`]).
    pub placement: &'a Placement,
    /// The job's slot this agent holds (see [`crate::placement::NodeSlots`]).
    pub slot: Option<&'a Slot<'a>>,
}

/// Where the agent mounts the claim.
const MOUNT: &str = "/data";
/// Log lines kept for a report of a failed agent.
const TAIL: usize = 12;

/// Runs one volume's agent to its end: its last report (`Stored` or `Restored`).
/// Whatever happens, its Job, pods and Secret are deleted before this returns.
pub async fn run(
    client: &kube::Client,
    access: &AgentAccess,
    v: &Volume<'_>,
    opts: &AgentOptions,
    lease: &JobLease,
    progress: &Arc<JobProgress>,
) -> Result<AgentLine> {
    lease.hold(v.namespace).await?;
    // Pod Security `restricted` admits no root: the workload's user, or nothing.
    let user = match podsec::enforced(client, v.namespace).await.as_deref() {
        Some("restricted") => match v.user {
            Some(u) => Some(u),
            None => {
                let why = podsec::refused("agent", v.namespace, "restricted", "", None);
                return Err(volume_err(v, why));
            }
        },
        _ => None,
    };
    let as_user = |u: &RunAs, why: &str| {
        progress.log(format!(
            "{}/{}: Pod Security refuses a root agent here{why}: running as the workload's user {}, so files that user cannot read are skipped, each with a warning",
            v.namespace, v.shown, u.uid
        ));
    };
    if let Some(u) = user {
        as_user(u, "");
    }
    // At most three tries: the rule given up (no node for it is coming), then as the
    // workload's user (Pod Security refused root); each changes what the next asks for.
    let mut user = user;
    let mut placement = std::borrow::Cow::Borrowed(v.placement);
    loop {
        let this = Volume {
            placement: &placement,
            work: v.work.clone(),
            ..*v
        };
        let agent = Agent::new(client, &this, opts);
        let r = agent.attempt(access, &this, user, lease, progress).await;
        agent.remove().await;
        if r.is_ok() {
            return r;
        }
        if let Some(why) = agent.unplaced.lock().take() {
            let (p, note) = placement.without_nodes(&why);
            progress.log(format!("{}/{}: {note}", v.namespace, v.shown));
            placement = std::borrow::Cow::Owned(p);
            continue;
        }
        match (user, v.user) {
            // Refused by a level no label shows (the cluster's admission configuration):
            // again as the workload's user.
            (None, Some(u)) if agent.refused_by_pod_security.load(Relaxed) => {
                as_user(u, " (the cluster's own Pod Security level)");
                user = Some(u);
            }
            _ => return r,
        }
    }
}

fn volume_err(v: &Volume<'_>, detail: String) -> K8sError {
    K8sError::Volume {
        pvc: format!("{}/{}", v.namespace, v.shown),
        detail,
    }
}

struct Agent {
    jobs: Api<Job>,
    pods: Api<Pod>,
    secrets: Api<Secret>,
    name: String,
    opts: AgentOptions,
    /// Set when Pod Security refused the Job its pod.
    refused_by_pod_security: AtomicBool,
    /// Set when the node its placement's rule asks for is not coming: why.
    unplaced: parking_lot::Mutex<Option<String>>,
}

impl Agent {
    fn new(client: &kube::Client, v: &Volume<'_>, opts: &AgentOptions) -> Agent {
        Agent {
            jobs: Api::namespaced(client.clone(), v.namespace),
            pods: Api::namespaced(client.clone(), v.namespace),
            secrets: Api::namespaced(client.clone(), v.namespace),
            name: format!("ferry-agent-{}-{}", short(v.shown, 30), suffix()),
            opts: opts.clone(),
            refused_by_pod_security: AtomicBool::new(false),
            unplaced: parking_lot::Mutex::new(None),
        }
    }

    fn volume_err(&self, v: &Volume<'_>, detail: String) -> K8sError {
        volume_err(v, detail)
    }

    /// Starts the agent (as `user`, where given) and follows it to its end.
    async fn attempt(
        &self,
        access: &AgentAccess,
        v: &Volume<'_>,
        user: Option<&RunAs>,
        lease: &JobLease,
        progress: &Arc<JobProgress>,
    ) -> Result<AgentLine> {
        self.create(access, v, user, lease).await?;
        self.follow(v, user, progress).await
    }

    async fn create(
        &self,
        access: &AgentAccess,
        v: &Volume<'_>,
        user: Option<&RunAs>,
        lease: &JobLease,
    ) -> Result<()> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let mut data = serde_json::Map::new();
        data.insert(KEY_ENV.into(), json!(b64(&access.key)));
        if let Some(c) = &access.credentials {
            data.insert("AWS_ACCESS_KEY_ID".into(), json!(b64(&c.access_key_id)));
            data.insert(
                "AWS_SECRET_ACCESS_KEY".into(),
                json!(b64(&c.secret_access_key)),
            );
            if let Some(t) = &c.session_token {
                data.insert("AWS_SESSION_TOKEN".into(), json!(b64(t)));
            }
        }
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": self.name, "namespace": v.namespace, "labels": lease.labels("agent-secret")},
            "type": "Opaque",
            "data": data,
        }))
        .map_err(|e| K8sError::Invalid(format!("agent secret: {e}")))?;
        let limit = self.opts.stall_timeout;
        within(
            limit,
            || format!("creating the agent's Secret in {}", v.namespace),
            async {
                self.secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .map_err(|e| {
                        K8sError::api(
                            format!("cannot create the agent's Secret in {}", v.namespace),
                            &e,
                        )
                    })
            },
        )
        .await?;

        let share = |l: Option<u64>| l.map(|l| (l / v.sharing.max(1) as u64).max(1));
        let mut args: Vec<String> = vec!["--expect-version".into(), VERSION.into()];
        let read_only = matches!(v.work, Work::Backup { .. });
        match &v.work {
            Work::Backup { parent, from_copy } => {
                args.push("backup".into());
                if *from_copy {
                    args.push("--ignore-inode".into());
                }
                if let Some(p) = parent {
                    args.extend(["--parent".into(), p.to_string()]);
                }
                if let Some(l) = share(self.opts.limit_upload) {
                    args.extend(["--limit-upload".into(), l.to_string()]);
                }
                if let Some(l) = share(self.opts.limit_read) {
                    args.extend(["--limit-read".into(), l.to_string()]);
                }
            }
            Work::Restore { tree } => {
                args.extend(["restore".into(), "--tree".into(), tree.to_string()]);
                if let Some(l) = share(self.opts.limit_download) {
                    args.extend(["--limit-download".into(), l.to_string()]);
                }
            }
        }
        args.extend([
            "--path".into(),
            MOUNT.into(),
            "--repo".into(),
            access.store.location.clone(),
        ]);
        if let Some(e) = &access.store.endpoint {
            args.extend(["--endpoint".into(), e.clone()]);
        }
        args.extend([
            "--reach-timeout".into(),
            self.opts.reach_timeout.as_secs().max(1).to_string(),
            "--retry-budget".into(),
            self.opts.retry_budget.as_secs().to_string(),
        ]);
        if let Some(r) = &access.store.region {
            args.extend(["--region".into(), r.clone()]);
        }
        if access.store.path_style {
            args.push("--path-style".into());
        }
        let mut pod_labels = lease.labels("agent");
        pod_labels["ferry.dev/claim"] = json!(short(v.claim, 63));
        let mut spec = json!({
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "agent",
                "image": self.opts.image,
                "args": args,
                "envFrom": [{"secretRef": {"name": self.name}}],
                "resources": self.opts.resources,
                // Root, to read and write every file whoever owns it, with no more than
                // that needs: Pod Security `baseline` admits it.
                "securityContext": podsec::container(None),
                "volumeMounts": [{"name": "data", "mountPath": MOUNT, "readOnly": read_only}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": v.claim, "readOnly": read_only}}],
        });
        if let Some(u) = user {
            podsec::run_as(&mut spec, u);
        }
        match &self.opts.service_account {
            Some(sa) => spec["serviceAccountName"] = json!(sa),
            None => spec["automountServiceAccountToken"] = json!(false),
        }
        v.placement.apply(&mut spec, v.node);
        if let Some(slot) = v.slot {
            slot.spread(&mut spec, &mut pod_labels, lease.id());
        }
        let job: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": self.name, "namespace": v.namespace, "labels": lease.labels("agent")},
            "spec": {
                "backoffLimit": self.opts.retries,
                "template": {
                    "metadata": {"labels": pod_labels, "annotations": crate::placement::not_to_disrupt()},
                    "spec": spec,
                },
            },
        }))
        .map_err(|e| K8sError::Invalid(format!("agent job: {e}")))?;
        within(
            limit,
            || format!("starting the agent for {}/{}", v.namespace, v.shown),
            async {
                self.jobs
                    .create(&PostParams::default(), &job)
                    .await
                    .map_err(|e| {
                        K8sError::api(
                            format!("cannot start the agent for {}/{}", v.namespace, v.shown),
                            &e,
                        )
                    })
            },
        )
        .await?;
        Ok(())
    }

    /// Follows the Job's pods until it completes or fails for good.
    async fn follow(
        &self,
        v: &Volume<'_>,
        user: Option<&RunAs>,
        progress: &Arc<JobProgress>,
    ) -> Result<AgentLine> {
        let limit = self.opts.stall_timeout;
        let mut followed: HashSet<String> = HashSet::new();
        let mut pending_since: Option<Instant> = None;
        let mut tally = Tally::default();
        let mut result: Option<AgentLine> = None;
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut failures: Vec<String> = Vec::new();
        let count_totals = matches!(v.work, Work::Backup { .. });
        let mut refused: Option<String> = None;
        // The scheduler's last word on a pod no node takes, and that pod.
        let mut unscheduled: Option<String>;
        let mut unscheduled_pod: Option<String>;
        // Since when it waits for a node its placement's rule asks for.
        let mut rule_wait: Option<Instant> = None;
        let mut polls: u64 = 0;
        progress.volume(v.namespace, v.shown, |s| s.state = "starting agent".into());
        loop {
            progress.check()?;
            let job = within(
                limit,
                || format!("reading the agent job {}", self.name),
                async {
                    self.jobs
                        .get(&self.name)
                        .await
                        .map_err(|e| K8sError::api(format!("agent job {}", self.name), &e))
                },
            )
            .await?;
            let pods = within(
                limit,
                || format!("listing the agent's pods {}", self.name),
                async {
                    self.pods
                        .list(&ListParams::default().labels(&format!("job-name={}", self.name)))
                        .await
                        .map_err(|e| {
                            K8sError::api(format!("pods of the agent job {}", self.name), &e)
                        })
                },
            )
            .await?;
            // Said again below by a pod that still waits, or forgotten.
            unscheduled = None;
            unscheduled_pod = None;
            // No pod to follow: the Job has not made one yet, or cannot (admission,
            // quota); that too is waited for at most `start_timeout`.
            let mut waiting = pods
                .items
                .iter()
                .all(|p| followed.contains(p.metadata.name.as_deref().unwrap_or_default()));
            let no_pod = pods.items.is_empty();
            for pod in pods.items {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                if followed.contains(&pod_name) {
                    continue;
                }
                if let (Some(slot), Some(node)) = (
                    v.slot,
                    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
                ) {
                    slot.bound(node);
                }
                let status = pod.status.clone().unwrap_or_default();
                let started = status.container_statuses.iter().flatten().any(|c| {
                    c.state
                        .as_ref()
                        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                });
                let ended = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
                match started || ended {
                    true => {
                        pending_since = None;
                        rule_wait = None;
                        progress.volume(v.namespace, v.shown, |s| {
                            s.state = if followed.is_empty() {
                                "moving (agent)".into()
                            } else {
                                format!("moving (agent, try {})", followed.len() + 1)
                            }
                        });
                        let mut seen = Seen {
                            result: &mut result,
                            tail: &mut tail,
                            tally: &mut tally,
                            failure: None,
                        };
                        self.read_log(&pod_name, v, progress, count_totals, &mut seen)
                            .await?;
                        let failure = seen.failure.take();
                        followed.insert(pod_name.clone());
                        // The pod's end is in its status once its log ended.
                        let now = self.pods.get(&pod_name).await.ok();
                        let phase = now
                            .and_then(|p| p.status)
                            .and_then(|s| s.phase)
                            .unwrap_or_default();
                        if phase != "Succeeded" && result.is_none() {
                            let why = failure.unwrap_or_else(|| {
                                let said = ended_with(&pod);
                                format!(
                                    "its pod {pod_name} ended ({}) without a report{said}",
                                    if phase.is_empty() {
                                        "deleted"
                                    } else {
                                        phase.as_str()
                                    }
                                )
                            });
                            progress.log(format!(
                                "{}/{}: the agent failed: {why}; the Job starts it again",
                                v.namespace, v.shown
                            ));
                            failures.push(why);
                        }
                    }
                    false => {
                        waiting = true;
                        if let Some(why) = cannot_start(&pod) {
                            return Err(self.volume_err(v, why));
                        }
                        unscheduled = unschedulable(&pod);
                        if unscheduled.is_some() {
                            unscheduled_pod = Some(pod_name);
                        }
                    }
                }
            }
            if let Some(why) = refused_version(&tail) {
                return Err(self.volume_err(v, why));
            }
            let conds = job
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            let has = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
            if has("Complete") {
                return result.ok_or_else(|| {
                    self.volume_err(
                        v,
                        format!(
                            "the agent ended without its report in its log{}",
                            lines(&tail)
                        ),
                    )
                });
            }
            if has("Failed") {
                let last = failures
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "it gave no reason".into());
                return Err(self.volume_err(
                    v,
                    format!(
                        "the agent failed {} time(s), the last time: {last}{}",
                        failures.len().max(1),
                        lines(&tail)
                    ),
                ));
            }
            // No pod yet: does the cluster refuse to make it? Read once a second.
            // Pod Security's refusal and a missing service account are final; another
            // (a quota that may free up, a webhook) is what the start timeout reports
            // if no pod comes. Once a pod exists, earlier refusals are history.
            polls += 1;
            if !no_pod {
                refused = None;
            } else if followed.is_empty() && polls % 5 == 1 {
                match why::refusal(
                    self.jobs.clone().into_client(),
                    &self.name,
                    v.namespace,
                    self.opts.service_account.as_deref(),
                    user,
                    self.opts.stall_timeout,
                )
                .await
                {
                    Some(r) if r.last => {
                        self.refused_by_pod_security.store(r.pod_security, Relaxed);
                        return Err(self.volume_err(v, r.why));
                    }
                    Some(r) => refused = Some(r.why),
                    None => {}
                }
            }
            // Every node it may use holds as many of this job's agents as it may: it
            // waits for one of them to end, whatever the start timeout.
            let for_slot = unscheduled
                .as_deref()
                .is_some_and(|s| s.contains("pod anti-affinity") && v.slot.is_some());
            if waiting && for_slot {
                progress.volume(v.namespace, v.shown, |s| {
                    s.state = "waiting for a node with a free agent slot".into()
                });
                pending_since = None;
                rule_wait = None;
            } else if waiting {
                let since = *pending_since.get_or_insert_with(Instant::now);
                let timed_out = since.elapsed() > self.opts.start_timeout;
                // A node its rule asks for, which none admitted at the start: is one
                // coming? Asked once a second.
                let mut held = false;
                if let Some(pod) = unscheduled_pod
                    .as_deref()
                    .filter(|_| timed_out || polls.is_multiple_of(5))
                {
                    let began = *rule_wait.get_or_insert_with(Instant::now);
                    let client = self.jobs.clone().into_client();
                    match v
                        .placement
                        .node_wait(&client, v.namespace, pod, began.elapsed(), timed_out)
                        .await
                    {
                        Some(NodeWait::GiveUp(why)) => {
                            *self.unplaced.lock() = Some(why.clone());
                            return Err(self.volume_err(v, why));
                        }
                        // The start timeout counts from when the node is there.
                        Some(NodeWait::Coming) => {
                            progress.volume(v.namespace, v.shown, |s| {
                                s.state = "waiting for the node the autoscaler adds".into()
                            });
                            pending_since = Some(Instant::now());
                            held = true;
                        }
                        Some(NodeWait::Waiting) | None => {}
                    }
                }
                if timed_out && !held {
                    let secs = self.opts.start_timeout.as_secs();
                    let why = match (refused.take(), unscheduled.take()) {
                        (Some(r), _) => r,
                        (None, Some(s)) => format!(
                            "no node could take the agent within {secs} s ({s}): free or add capacity on nodes where the claim's volume can be attached and its workload's tolerations and node selector allow, lower the agent's requests (--agent-cpu, --agent-memory), or wait longer (--start-timeout)"
                        ),
                        (None, None) => format!(
                            "the agent did not start within {secs} s: its image could not be pulled in time, or its claim could not be mounted (`kubectl describe job {} -n {}`)",
                            self.name, v.namespace
                        ),
                    };
                    return Err(self.volume_err(v, why));
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Reads a pod's log to its end (following it while the pod runs).
    async fn read_log(
        &self,
        pod: &str,
        v: &Volume<'_>,
        progress: &Arc<JobProgress>,
        count_totals: bool,
        seen: &mut Seen<'_>,
    ) -> Result<()> {
        let lp = LogParams {
            follow: true,
            container: Some("agent".into()),
            ..LogParams::default()
        };
        let stream = match self.pods.log_stream(pod, &lp).await {
            Ok(s) => s,
            // Gone already (deleted, or the node lost): the Job decides what follows.
            Err(e) => {
                seen.failure = Some(format!(
                    "its log could not be read: {}",
                    crate::cluster::explain(&e)
                ));
                return Ok(());
            }
        };
        let mut lines = stream.lines();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                line = lines.next() => {
                    let Some(line) = line else { return Ok(()) };
                    let Ok(line) = line else { return Ok(()) };
                    self.take(&line, v, progress, count_totals, seen);
                }
                _ = tick.tick() => progress.check()?,
            }
        }
    }

    fn take(
        &self,
        line: &str,
        v: &Volume<'_>,
        progress: &Arc<JobProgress>,
        count_totals: bool,
        seen: &mut Seen<'_>,
    ) {
        let Some(l) = AgentLine::parse(line) else {
            push_tail(seen.tail, line);
            return;
        };
        match l {
            AgentLine::Hello { version, .. } => {
                if version != VERSION {
                    push_tail(seen.tail, &format!("{REFUSED}{version}"));
                }
            }
            AgentLine::Progress {
                files,
                bytes,
                files_total,
                bytes_total,
                ..
            } => {
                let t = &mut *seen.tally;
                if count_totals {
                    let (df, db) = (
                        files_total.saturating_sub(t.files_total),
                        bytes_total.saturating_sub(t.bytes_total),
                    );
                    if df > 0 || db > 0 {
                        progress.data.add_total(df, db);
                    }
                }
                let (df, db) = (files.saturating_sub(t.files), bytes.saturating_sub(t.bytes));
                if df > 0 || db > 0 {
                    progress.data.add_done(df, db);
                }
                t.files = t.files.max(files);
                t.bytes = t.bytes.max(bytes);
                t.files_total = t.files_total.max(files_total);
                t.bytes_total = t.bytes_total.max(bytes_total);
                let t = *t;
                progress.volume(v.namespace, v.shown, |s| {
                    s.files = t.files;
                    s.bytes = t.bytes;
                    if count_totals {
                        s.files_total = t.files_total;
                        s.bytes_total = t.bytes_total;
                    }
                });
            }
            AgentLine::Warning { message } => {
                progress.log(format!("{}/{}: {message}", v.namespace, v.shown));
            }
            AgentLine::Failed { message } => {
                seen.failure = Some(clip(&message, 1200));
            }
            done @ (AgentLine::Stored { .. } | AgentLine::Restored { .. }) => {
                *seen.result = Some(done);
            }
        }
    }

    /// Deletes the Job (its pods with it) and the Secret. Never fails: what is left
    /// carries the job's labels, which the next job's sweep removes.
    async fn remove(&self) {
        let limit = self.opts.stall_timeout;
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let _ = tokio::time::timeout(limit, self.jobs.delete(&self.name, &dp)).await;
        // The pods at once, not when the garbage collector gets to them: a cancelled
        // agent stops now.
        let lp = ListParams::default().labels(&format!("job-name={}", self.name));
        let _ = tokio::time::timeout(
            limit,
            self.pods.delete_collection(
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
                &lp,
            ),
        )
        .await;
        match tokio::time::timeout(
            limit,
            self.secrets.delete(&self.name, &DeleteParams::default()),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
            Ok(Err(e)) => {
                tracing::warn!(secret = %self.name, error = %e, "agent secret not deleted")
            }
            Err(_) => {
                tracing::warn!(secret = %self.name, "agent secret not deleted: the cluster did not answer")
            }
        }
    }
}

/// What a pod's log told so far.
struct Seen<'a> {
    result: &'a mut Option<AgentLine>,
    tail: &'a mut VecDeque<String>,
    tally: &'a mut Tally,
    /// The pod's own last failure report.
    failure: Option<String>,
}

/// The highest counts an agent of this volume reported (a retried agent counts again
/// from zero: only what goes beyond is new).
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    files: u64,
    bytes: u64,
    files_total: u64,
    bytes_total: u64,
}

/// A name part: at most `n` characters of lowercase letters, digits and `-`.
fn short(s: &str, n: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(n)
        .collect();
    cleaned.trim_matches('-').to_string()
}

fn suffix() -> String {
    let mut b = [0u8; 3];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_dns_labels() {
        assert_eq!(short("Data_Volume.1", 30), "data-volume-1");
        assert_eq!(short("-x-", 30), "x");
        assert!(short(&"a".repeat(100), 30).len() <= 30);
    }
}

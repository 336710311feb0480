//! Mover pods: how volume data leaves and enters a cluster without an agent, without
//! network paths between clusters and without storage credentials in the cluster.
//!
//! A mover is a short-lived pod (any small image with `sh`, `find`, `stat` and `tar`;
//! busybox by default) that mounts one claim. Ferry lists the files through the exec
//! API, then streams a tar archive out of it (capture) or into it (restore); the exec
//! protocol is in [`listing`]. The pod is deleted whatever happens, and carries its
//! job's labels and lease ([`super::lease`]) so a dead job's leftover is found and
//! removed by the next job on the cluster.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, DeleteParams, PostParams};
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::lease::JobLease;
use super::listing;
use super::objects::is_not_found;
use super::placement::{NodeWait, Placement};
use super::podsec;
pub use super::podsec::RunAs;
use super::{K8sError, Result, unless_stalled, within};

/// The mover image when none is configured.
pub const DEFAULT_IMAGE: &str = "busybox:1.36";
/// Where a mover mounts the claim it reads.
pub const SRC: &str = "/ferry/src";
/// Where a mover mounts the claim it writes.
pub const DST: &str = "/ferry/dst";

/// How movers are run.
#[derive(Debug, Clone)]
pub struct MoverOptions {
    pub image: String,
    /// How long a mover may take to start (image pull, volume binding).
    pub start_timeout: Duration,
    /// How long a data stream may move nothing, or a request stay unanswered, before
    /// the job gives up on the cluster (the connection dropped or stalled).
    pub stall_timeout: Duration,
    /// At most this many archives per volume extracted side by side in the mover on
    /// the exec path (one `tar -x` spends its time creating files on one core). One by
    /// default: with the mover on this machine's cores, more measured slower
    /// (`bench/k8s-results.md`).
    pub streams: usize,
    /// Taints Ferry's pods (movers and agents) also tolerate, beyond those of the
    /// claim's workload (`--tolerate`).
    pub tolerations: Vec<serde_json::Value>,
    /// The in-cluster agents that move the data instead when the repository is an
    /// object store (`agent.rs`).
    pub agent: super::agent::AgentOptions,
}

impl Default for MoverOptions {
    fn default() -> Self {
        MoverOptions {
            image: DEFAULT_IMAGE.into(),
            start_timeout: Duration::from_secs(180),
            stall_timeout: Duration::from_secs(120),
            streams: 1,
            tolerations: Vec::new(),
            agent: super::agent::AgentOptions::default(),
        }
    }
}

pub use super::listing::Listed;

/// A mover's failure `e`, saying why it was started again without its placement's node
/// rule (`unplaced`), where it was.
fn noted(e: K8sError, unplaced: Option<String>) -> K8sError {
    match (e, unplaced) {
        (K8sError::Volume { pvc, detail }, Some(note)) => K8sError::Volume {
            pvc,
            detail: format!("{detail} (started again: {note})"),
        },
        (e, _) => e,
    }
}

/// A running mover pod.
#[derive(Debug)]
pub struct Mover {
    api: Api<Pod>,
    pub name: String,
    pub namespace: String,
    pub mount: &'static str,
    /// See [`MoverOptions::stall_timeout`].
    pub stall: Duration,
    /// The workload's user it runs as, where Pod Security refused root: it reads only
    /// what that user may, and files it writes are that user's.
    pub user: Option<RunAs>,
    /// Where the node rule of its placement was given up, no node for it coming: the
    /// note for the job's log.
    pub unplaced: Option<String>,
}

impl Mover {
    /// Starts a mover of the job `lease` mounting `claim` (read-only at [`SRC`], or
    /// writable at [`DST`]), on `node` when the claim is held there, else where
    /// `placement` lets it go, and waits until it runs. A claim that another running job writes to is refused. Where Pod Security
    /// refuses root, the mover runs as `user` (the workload's) when there is one:
    /// [`Mover::user`] says so. Where no node its placement's rule asks for comes, it
    /// starts again without the rule: [`Mover::unplaced`] says so.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        client: &kube::Client,
        namespace: &str,
        claim: &str,
        read_only: bool,
        node: Option<&str>,
        user: Option<&RunAs>,
        placement: &Placement,
        opts: &MoverOptions,
        lease: &JobLease,
    ) -> Result<Mover> {
        let mut placement = std::borrow::Cow::Borrowed(placement);
        let mut unplaced = None;
        loop {
            let created = Self::create(
                client, namespace, claim, read_only, node, user, &placement, opts, lease,
            )
            .await;
            let mut mover = match created {
                Ok(m) => m,
                Err(e) => return Err(noted(e, unplaced)),
            };
            match mover
                .wait_running(opts.start_timeout, claim, &placement)
                .await
            {
                Ok(None) => {
                    mover.unplaced = unplaced;
                    return Ok(mover);
                }
                Ok(Some(why)) => {
                    mover.delete().await;
                    let (p, note) = placement.without_nodes(&why);
                    unplaced = Some(note);
                    placement = std::borrow::Cow::Owned(p);
                }
                Err(e) => {
                    mover.delete().await;
                    return Err(noted(e, unplaced));
                }
            }
        }
    }

    /// Creates the mover's pod (see [`Mover::start`]).
    #[allow(clippy::too_many_arguments)]
    async fn create(
        client: &kube::Client,
        namespace: &str,
        claim: &str,
        read_only: bool,
        node: Option<&str>,
        user: Option<&RunAs>,
        placement: &Placement,
        opts: &MoverOptions,
        lease: &JobLease,
    ) -> Result<Mover> {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let mount = if read_only { SRC } else { DST };
        let mut spec = json!({
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "mover",
                "image": opts.image,
                "command": ["sleep", "86400"],
                // Root, to read and write every file whoever owns it, with no more than
                // that needs: Pod Security's `baseline` admits it (`restricted` refuses
                // root: then the workload's user, below).
                "securityContext": podsec::container(None),
                "volumeMounts": [{"name": "data", "mountPath": mount, "readOnly": read_only}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}],
        });
        placement.apply(&mut spec, node);
        let mut labels = lease.labels("mover");
        labels["ferry.dev/claim"] = json!(claim_label(claim));
        let pod_of = |spec: &serde_json::Value| -> Result<Pod> {
            serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": "ferry-mover-",
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": super::placement::not_to_disrupt(),
                },
                "spec": spec,
            }))
            .map_err(|e| K8sError::Invalid(format!("mover pod: {e}")))
        };
        let pod = pod_of(&spec)?;
        // The same pod as the workload's user, as Pod Security `restricted` admits it.
        let as_user = match user {
            Some(u) => {
                let mut spec = spec.clone();
                podsec::run_as(&mut spec, u);
                Some((u, pod_of(&spec)?))
            }
            None => None,
        };
        if !read_only
            && let Some(other) =
                super::lease::writer_of(client, namespace, claim, lease.id(), opts.stall_timeout)
                    .await
        {
            return Err(K8sError::Volume {
                pvc: format!("{namespace}/{claim}"),
                detail: format!(
                    "another Ferry job ({other}) is writing to this claim right now: wait until it ends, or cancel it, then run this job again"
                ),
            });
        }
        lease.hold(namespace).await?;
        let create = |pod: &Pod| {
            let (api, pod) = (api.clone(), pod.clone());
            within(
                opts.stall_timeout,
                || format!("starting a mover pod for {namespace}/{claim}"),
                // The outer error: the cluster did not answer; the inner: its refusal.
                async move { Ok(api.create(&PostParams::default(), &pod).await) },
            )
        };
        let failed = |e: kube::Error, tried: Option<&RunAs>| match podsec::refusal(&e) {
            Some((level, why)) => K8sError::Volume {
                pvc: format!("{namespace}/{claim}"),
                detail: podsec::refused("mover", namespace, &level, &why, tried),
            },
            None => K8sError::api(
                format!("cannot start a mover pod for {namespace}/{claim}"),
                &e,
            ),
        };
        let (created, ran_as) = match create(&pod).await? {
            Ok(p) => (p, None),
            Err(e) => match (&as_user, podsec::refusal(&e)) {
                (Some((u, pod)), Some(_)) => {
                    tracing::info!(
                        "mover for {namespace}/{claim}: Pod Security refuses root, running as the workload's user {}",
                        u.uid
                    );
                    match create(pod).await? {
                        Ok(p) => (p, Some((*u).clone())),
                        Err(e) => return Err(failed(e, Some(u))),
                    }
                }
                _ => return Err(failed(e, None)),
            },
        };
        let name = created.metadata.name.unwrap_or_default();
        Ok(Mover {
            api,
            name,
            namespace: namespace.into(),
            mount,
            stall: opts.stall_timeout,
            user: ran_as,
            unplaced: None,
        })
    }

    /// Waits until the pod runs; `Some(why)` when the node its placement's rule asks
    /// for is not coming (see [`Placement::node_wait`]).
    async fn wait_running(
        &self,
        timeout: Duration,
        claim: &str,
        placement: &Placement,
    ) -> Result<Option<String>> {
        let mut started = Instant::now();
        // Since when it waits for a node its placement's rule asks for.
        let mut rule_wait: Option<Instant> = None;
        let mut polls: u64 = 0;
        loop {
            polls += 1;
            let p = within(
                self.stall,
                || format!("waiting for the mover pod {}", self.name),
                async {
                    self.api
                        .get(&self.name)
                        .await
                        .map_err(|e| K8sError::api(format!("mover pod {}", self.name), &e))
                },
            )
            .await?;
            let status = p.status.unwrap_or_default();
            match status.phase.as_deref() {
                Some("Running") => return Ok(None),
                Some("Failed" | "Succeeded") => {
                    return Err(K8sError::Volume {
                        pvc: format!("{}/{claim}", self.namespace),
                        detail: format!(
                            "the mover pod {} stopped ({}): check the image {:?} can run",
                            self.name,
                            status.message.unwrap_or_default(),
                            p.spec
                                .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
                                .unwrap_or_default()
                        ),
                    });
                }
                _ => {}
            }
            let timed_out = started.elapsed() > timeout;
            let unschedulable =
                status.conditions.iter().flatten().any(|c| {
                    c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable")
                });
            let mut held = false;
            if unschedulable && (timed_out || polls.is_multiple_of(5)) {
                let began = *rule_wait.get_or_insert_with(Instant::now);
                let client = self.api.clone().into_client();
                match placement
                    .node_wait(
                        &client,
                        &self.namespace,
                        &self.name,
                        began.elapsed(),
                        timed_out,
                    )
                    .await
                {
                    Some(NodeWait::GiveUp(why)) => return Ok(Some(why)),
                    // The start timeout counts from when the node is there.
                    Some(NodeWait::Coming) => {
                        started = Instant::now();
                        held = true;
                    }
                    Some(NodeWait::Waiting) | None => {}
                }
            }
            if timed_out && !held {
                let why = status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.status != "True")
                    .filter_map(|c| c.message.or(c.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(K8sError::Volume {
                    pvc: format!("{}/{claim}", self.namespace),
                    detail: format!(
                        "the mover pod {} did not start within {} s{}: check that the claim can bind and the image can be pulled (`kubectl describe pod {} -n {}`)",
                        self.name,
                        timeout.as_secs(),
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(" ({why})")
                        },
                        self.name,
                        self.namespace
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `command` in the mover with stdin and stdout attached.
    pub async fn exec(&self, command: Vec<String>, stdin: bool) -> Result<AttachedProcess> {
        let ap = AttachParams::default()
            .container("mover")
            .stdin(stdin)
            .stdout(true)
            .stderr(true)
            // kube-rs buffers 1 KiB per stream by default, which caps a volume at about
            // 130 MiB/s; 1 MiB lets it run at what the connection carries.
            .max_stdout_buf_size(1 << 20)
            .max_stdin_buf_size(1 << 20);
        within(
            self.stall,
            || format!("exec in the mover pod {}", self.name),
            async {
                self.api.exec(&self.name, command, &ap).await.map_err(|e| {
                    K8sError::api(format!("cannot exec in the mover pod {}", self.name), &e)
                })
            },
        )
        .await
    }

    /// Runs `command` to its end and returns its stdout; a failure carries stderr.
    pub async fn run(&self, command: Vec<String>) -> Result<Vec<u8>> {
        self.run_with_input(command, None).await
    }

    /// Runs `command` to its end with `input` (when given) on its stdin, and returns
    /// its stdout; a failure carries stderr. It may run as long as its output keeps
    /// coming.
    pub async fn run_with_input(
        &self,
        command: Vec<String>,
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let what = command.join(" ");
        let mut p = self.exec(command, input.is_some()).await?;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (mut so, mut se) = (p.stdout(), p.stderr());
        let mut si = p.stdin();
        let got = AtomicU64::new(0);
        let feed = async {
            if let (Some(w), Some(input)) = (si.as_mut(), input) {
                use tokio::io::AsyncWriteExt as _;
                w.write_all(input).await?;
                w.shutdown().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let read_out = async {
            if let Some(s) = so.as_mut() {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    out.extend_from_slice(&buf[..n]);
                    got.fetch_add(n as u64, Relaxed);
                }
            }
        };
        let read_err = async {
            if let Some(s) = se.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        let read = async { tokio::join!(feed, read_out, read_err) };
        let Some((fed, (), ())) = unless_stalled(self.stall, || got.load(Relaxed), read).await
        else {
            p.abort();
            return Err(self.stalled(&what));
        };
        self.finish(p, &what, &err).await?;
        fed.map_err(|e| K8sError::Volume {
            pvc: format!("{}/{}", self.namespace, self.name),
            detail: format!("cannot send `{what}` its input: {e}"),
        })?;
        Ok(out)
    }

    /// The error of a stream that stopped moving.
    pub fn stalled(&self, what: &str) -> K8sError {
        K8sError::Unreachable {
            what: format!("`{what}` in the mover pod {}/{}", self.namespace, self.name),
            secs: self.stall.as_secs(),
        }
    }

    /// Waits for an exec'd command's status; an error unless it succeeded.
    pub async fn finish(&self, mut p: AttachedProcess, what: &str, stderr: &[u8]) -> Result<()> {
        let status = match p.take_status() {
            Some(s) => match tokio::time::timeout(self.stall, s).await {
                Ok(s) => s,
                Err(_) => {
                    p.abort();
                    return Err(self.stalled(what));
                }
            },
            None => None,
        };
        let _ = tokio::time::timeout(self.stall, p.join()).await;
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            Some(s) => Err(K8sError::Volume {
                pvc: format!("{}/{}", self.namespace, self.name),
                detail: format!(
                    "`{what}` failed in the mover: {}{}",
                    s.message.unwrap_or_default(),
                    tail(stderr)
                ),
            }),
            None => Err(K8sError::Volume {
                pvc: format!("{}/{}", self.namespace, self.name),
                detail: format!(
                    "`{what}` ended without a status (the connection dropped?){}: run the job again, it resumes",
                    tail(stderr)
                ),
            }),
        }
    }

    /// Lists the mounted volume (see [`listing`]). A listing that fails (files
    /// vanishing under `find` on a live volume) is tried three times.
    pub async fn list(&self) -> Result<Vec<Listed>> {
        let cmd = vec!["sh".into(), "-c".into(), listing::list_script(self.mount)];
        let mut tries = 0;
        loop {
            tries += 1;
            let r = self.run(cmd.clone()).await.and_then(|out| {
                listing::parse_listing(&out).map_err(|e| K8sError::Volume {
                    pvc: format!("{}/{}", self.namespace, self.name),
                    detail: format!(
                        "{e}: the mover image must have POSIX `sh`, `find` and `stat -c` (busybox has them)"
                    ),
                })
            });
            match r {
                Err(K8sError::Volume { .. }) if tries < 3 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                r => return r,
            }
        }
    }

    /// Deletes the pod (at once, no grace period). Never fails: a leftover mover is
    /// logged, and carries Ferry's label for cleanup.
    pub async fn delete(&self) {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match tokio::time::timeout(self.stall, self.api.delete(&self.name, &dp)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if is_not_found(&e) => {}
            Ok(Err(e)) => {
                tracing::warn!(pod = %self.name, ns = %self.namespace, error = %e, "mover pod not deleted")
            }
            Err(_) => {
                tracing::warn!(pod = %self.name, ns = %self.namespace, "mover pod not deleted: the cluster did not answer")
            }
        }
    }
}

/// The claim as a label value (at most 63 characters; longer names are hashed).
fn claim_label(claim: &str) -> String {
    if claim.len() <= 63 {
        claim.to_string()
    } else {
        blake3::hash(claim.as_bytes()).to_hex()[..40].to_string()
    }
}

fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        let start = s.len().saturating_sub(400);
        let start = (start..s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(s.len());
        format!(" ({})", &s[start..])
    }
}

/// Who uses a claim now: the node a running pod using it is on (where a ReadWriteOnce
/// claim must be read), the non-root user its pods run as (see [`RunAs::of_claim`]),
/// and their tolerations, which Ferry's pod for the claim takes (its volume is bound:
/// no node rule, see [`Placement`]).
#[derive(Debug, Default)]
pub struct Holders {
    pub node: Option<String>,
    pub user: Option<RunAs>,
    pub placement: Placement,
}

/// The pods of `namespace` using `claim`: see [`Holders`].
pub async fn holders(client: &kube::Client, namespace: &str, claim: &str) -> Holders {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Ok(pods) = api.list(&Default::default()).await else {
        return Holders::default();
    };
    let mut nodes: HashMap<String, usize> = HashMap::new();
    let mut user = None;
    let mut tolerations: Vec<serde_json::Value> = Vec::new();
    for p in pods.items {
        let uses = p
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == claim)
            });
        let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !uses || !running {
            continue;
        }
        if user.is_none() {
            // Only the pods that use the claim are read as JSON.
            user = serde_json::to_value(&p)
                .ok()
                .and_then(|v| RunAs::of_claim(&v, claim));
        }
        let Some(spec) = p.spec else { continue };
        if let Some(n) = spec.node_name {
            *nodes.entry(n).or_default() += 1;
        }
        for t in spec.tolerations.iter().flatten() {
            if let Ok(t) = serde_json::to_value(t)
                && !tolerations.contains(&t)
            {
                tolerations.push(t);
            }
        }
    }
    if nodes.is_empty() && user.is_none() && tolerations.is_empty() {
        // No pod uses it now (scaled to zero, a CronJob between runs): its workload.
        if let Some((user, tolerations)) = workload_of(client, namespace, claim).await {
            return Holders {
                node: None,
                user,
                placement: Placement {
                    tolerations,
                    ..Placement::default()
                },
            };
        }
    }
    Holders {
        node: nodes.into_iter().max_by_key(|(_, c)| *c).map(|(n, _)| n),
        user,
        placement: Placement {
            tolerations,
            ..Placement::default()
        },
    }
}

/// The user and tolerations of the Deployment, StatefulSet or CronJob of `namespace`
/// whose pods mount `claim`, where one does.
async fn workload_of(
    client: &kube::Client,
    namespace: &str,
    claim: &str,
) -> Option<(Option<RunAs>, Vec<serde_json::Value>)> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::batch::v1::CronJob;
    async fn objects<K>(client: &kube::Client, namespace: &str) -> Vec<serde_json::Value>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        match api.list(&Default::default()).await {
            Ok(l) => l
                .items
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
    let mut all = objects::<StatefulSet>(client, namespace).await;
    all.extend(objects::<Deployment>(client, namespace).await);
    all.extend(objects::<CronJob>(client, namespace).await);
    all.iter().find_map(|o| {
        let p = Placement::of_workload(o, claim)?;
        Some((RunAs::of_claim(o, claim), p.tolerations))
    })
}

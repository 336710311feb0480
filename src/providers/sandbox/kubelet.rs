//! The running half of the kubelet: containers of images the sandbox holds (`busybox`,
//! run on the host's static busybox, isolated by an OCI runtime where there is one; see
//! `runtime.rs` and `oci.rs`) run their command as real processes, with the pod's volumes, environment, ConfigMap and Secret files and
//! working directory. What a kubelet reports follows from what the process does:
//!
//! - logs: stdout and stderr, line by line with their time, in
//!   `<sandbox>/pods/<uid>/logs/<container>/<restart>.log`, served by `pods/log`
//!   (`logs.rs`);
//! - exit codes, `state` and `lastState`, `restartCount`: a container that exits is
//!   restarted as its pod's `restartPolicy` says, after a back-off of 10 s doubling to
//!   5 min (`CrashLoopBackOff` meanwhile), reset once a run lasted 10 minutes; a pod
//!   whose containers all ended for good is `Succeeded` or `Failed`;
//! - init containers run one after the other before the others start;
//! - probes (exec, tcpSocket and httpGet on 127.0.0.1): readiness decides `ready` and
//!   the pod's `Ready` condition, liveness restarts the container, startup holds both
//!   back until it succeeds.
//!
//! Containers of images the sandbox does not hold are emulated as before (`pods.rs`):
//! reported running and ready; their pods carry the condition [`EMULATED`] so tests and
//! users can tell. A container is killed, with everything it started, when its pod is
//! deleted or the sandbox stops.
//!
//! Owns container processes, writing their logs, and the container statuses of pods it
//! runs. Must not
//! schedule pods (`scheduler.rs` does) or decide their volumes (`pods.rs` does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};

use super::controllers::{condition, event, get, set_status};
use super::runtime::{ContainerView, Process, exit_code};
use super::server::Shared;
use super::verbs::{ApiResult, Cluster, now};

/// The pod condition that marks pods whose containers are emulated, not run.
pub const EMULATED: &str = "sandbox.ferry.dev/Emulated";

/// The first back-off before a restart, doubled each time up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A run this long resets the back-off.
const STABLE: Duration = Duration::from_secs(600);
/// A log line longer than this is split into partial lines, as CRI runtimes do.
const MAX_LINE: usize = 16 * 1024;

/// The running pods, by uid.
#[derive(Default)]
pub struct Kubelet {
    pods: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// Log files being written, each with a sender that closes when its run ends.
    live: Mutex<HashMap<PathBuf, watch::Receiver<bool>>>,
    running: watch::Sender<usize>,
    stopped: Mutex<bool>,
}

impl Kubelet {
    /// Whether the log file at `path` is being written (its run goes on): a receiver
    /// that turns true when it ends.
    pub fn live(&self, path: &Path) -> Option<watch::Receiver<bool>> {
        self.live.lock().get(path).cloned()
    }

    /// Kills every container process and waits (a few seconds at most) until they are
    /// gone.
    pub async fn stop(&self) {
        *self.stopped.lock() = true;
        for (_, cancel) in self.pods.lock().drain() {
            let _ = cancel.send(true);
        }
        let mut running = self.running.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), running.wait_for(|n| *n == 0)).await;
    }
}

/// Whether the container's image is one the sandbox holds and runs for real.
pub fn held(ctr: &Value) -> bool {
    super::runtime::holds(ctr["image"].as_str().unwrap_or(""))
}

/// Whether the kubelet runs the pod now: it has containers of held images, and its
/// volumes are ready (`pods.rs` said so with `PodReadyToStartContainers`).
pub fn owns(pod: &Value) -> bool {
    runs(pod)
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "PodReadyToStartContainers" && c["status"] == "True")
        })
}

/// Whether any container of the pod (init containers included) runs for real.
pub fn runs(pod: &Value) -> bool {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| pod["spec"][*k].as_array())
        .flatten()
        .any(held)
}

/// How a container is checked (a probe of its spec).
#[derive(Debug, Clone)]
struct Probe {
    action: Action,
    initial: Duration,
    period: Duration,
    timeout: Duration,
    success: u32,
    failure: u32,
}

#[derive(Debug, Clone)]
enum Action {
    Exec(Vec<String>),
    Tcp(u16),
    Http {
        port: u16,
        path: String,
    },
    /// A probe the sandbox cannot carry out (gRPC, an unknown named port): it passes.
    Unsupported(String),
}

impl Probe {
    fn of(spec: &Value, ports: &[(String, u16)]) -> Option<Probe> {
        if !spec.is_object() {
            return None;
        }
        let secs = |k: &str, d: u64| Duration::from_secs(spec[k].as_u64().unwrap_or(d));
        let port = |p: &Value| match p {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(name) => ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p),
            _ => None,
        };
        let action = if let Some(cmd) = spec["exec"]["command"].as_array() {
            Action::Exec(
                cmd.iter()
                    .map(|a| a.as_str().unwrap_or("").to_string())
                    .collect(),
            )
        } else if spec["tcpSocket"].is_object() {
            match port(&spec["tcpSocket"]["port"]) {
                Some(p) => Action::Tcp(p),
                None => Action::Unsupported(format!("port {}", spec["tcpSocket"]["port"])),
            }
        } else if spec["httpGet"].is_object() {
            match port(&spec["httpGet"]["port"]) {
                Some(p) => Action::Http {
                    port: p,
                    path: spec["httpGet"]["path"].as_str().unwrap_or("/").to_string(),
                },
                None => Action::Unsupported(format!("port {}", spec["httpGet"]["port"])),
            }
        } else {
            Action::Unsupported("this kind of probe".into())
        };
        Some(Probe {
            action,
            initial: secs("initialDelaySeconds", 0),
            period: secs("periodSeconds", 10).max(Duration::from_secs(1)),
            timeout: secs("timeoutSeconds", 1).max(Duration::from_secs(1)),
            success: spec["successThreshold"].as_u64().unwrap_or(1).max(1) as u32,
            failure: spec["failureThreshold"].as_u64().unwrap_or(3).max(1) as u32,
        })
    }
}

/// One container of a running pod: what to run and how to check it.
#[derive(Clone)]
struct Spec {
    name: String,
    image: String,
    /// `None` for an emulated container.
    view: Option<ContainerView>,
    argv: Vec<String>,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
    startup: Option<Probe>,
}

/// How a container's run ended.
#[derive(Debug, Clone)]
struct Ended {
    code: i32,
    reason: &'static str,
    started: String,
    finished: String,
    message: Option<String>,
}

/// What a container is doing, as `containerStatuses` says it.
#[derive(Debug, Clone)]
enum State {
    Waiting(&'static str, Option<String>),
    Running { started: String },
    Terminated(Ended),
}

#[derive(Debug, Clone)]
struct Status {
    name: String,
    image: String,
    state: State,
    last: Option<Ended>,
    restarts: u64,
    ready: bool,
    started: bool,
    /// Ended for good (no restart will follow).
    done: bool,
}

impl Status {
    fn json(&self, uid: &str) -> Value {
        let ended = |e: &Ended| {
            let mut t = json!({"exitCode": e.code, "reason": e.reason, "startedAt": e.started,
                               "finishedAt": e.finished, "containerID": self.id(uid)});
            if let Some(m) = &e.message {
                t["message"] = json!(m);
            }
            json!({ "terminated": t })
        };
        let state = match &self.state {
            State::Waiting(reason, message) => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({ "waiting": w })
            }
            State::Running { started } => json!({"running": {"startedAt": started}}),
            State::Terminated(e) => ended(e),
        };
        let repo = self.image.split('@').next().unwrap_or("");
        let repo = repo.rsplit_once(':').map_or(repo, |(r, _)| r);
        let digest = blake3::hash(self.image.as_bytes()).to_hex();
        let mut s = json!({
            "name": self.name, "image": self.image, "imageID": format!("{repo}@sha256:{digest}"),
            "ready": self.ready, "started": self.started, "restartCount": self.restarts,
            "state": state, "lastState": self.last.as_ref().map_or(json!({}), ended),
        });
        if !matches!(
            self.state,
            State::Waiting("ContainerCreating" | "PodInitializing", _)
        ) {
            s["containerID"] = json!(self.id(uid));
        }
        s
    }

    fn id(&self, uid: &str) -> String {
        let h = blake3::hash(format!("{uid}/{}/{}", self.name, self.restarts).as_bytes());
        format!("containerd://{}", h.to_hex())
    }
}

/// A running pod: where it is, and its containers' statuses.
struct Pod {
    ns: String,
    name: String,
    uid: String,
    policy: String,
    dir: PathBuf,
    init: Mutex<Vec<Status>>,
    main: Mutex<Vec<Status>>,
}

impl Pod {
    /// The statuses of its init containers, or of its containers.
    fn statuses(&self, init: bool) -> &Mutex<Vec<Status>> {
        if init { &self.init } else { &self.main }
    }

    fn log_dir(&self, container: &str) -> PathBuf {
        self.dir.join("logs").join(container)
    }
}

/// Starts the pods that should run and are not running yet; stops those that are gone.
/// Called by the control loop when pods changed, and on its tick (a start that could not
/// be planned, for a volume or ConfigMap not there yet, is tried again then).
pub fn sync(shared: &Arc<Shared>) {
    let kubelet = &shared.kubelet;
    if *kubelet.stopped.lock() {
        return;
    }
    let mut starts = Vec::new();
    {
        let c = shared.cluster.lock();
        let mut pods = kubelet.pods.lock();
        let wanted: HashMap<String, &Value> = c
            .store
            .list("", "pods", None)
            .filter(|(_, p)| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && matches!(p["status"]["phase"].as_str(), Some("Pending" | "Running"))
                    && owns(p)
            })
            .filter_map(|(_, p)| Some((p["metadata"]["uid"].as_str()?.to_string(), p)))
            .collect();
        pods.retain(|uid, cancel| {
            let keep = wanted.contains_key(uid);
            if !keep {
                let _ = cancel.send(true);
            }
            keep
        });
        for (uid, pod) in wanted {
            if pods.contains_key(&uid) {
                continue;
            }
            match plan(&c, pod) {
                Ok(p) => {
                    let (tx, rx) = watch::channel(false);
                    pods.insert(uid, tx);
                    starts.push((p, rx));
                }
                Err(e) => tracing::debug!("sandbox kubelet: pod {uid}: {}", e.message),
            }
        }
    }
    for ((pod, init, main), cancel) in starts {
        let shared = shared.clone();
        let guard = Running::enter(&shared.kubelet.running);
        tokio::spawn(async move {
            run_pod(&shared, Arc::new(pod), init, main, cancel).await;
            drop(guard);
        });
    }
}

/// Counts a running pod task while it lives.
struct Running(watch::Sender<usize>);

impl Running {
    fn enter(n: &watch::Sender<usize>) -> Running {
        n.send_modify(|n| *n += 1);
        Running(n.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The containers of `pod` as the kubelet runs them, with their statuses so far (a
/// sandbox restarted while the pod ran starts its containers again, counted as
/// restarts).
fn plan(c: &Cluster, pod: &Value) -> ApiResult<(Pod, Vec<Spec>, Vec<Spec>)> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let specs = |key: &str| -> ApiResult<Vec<Spec>> {
        let mut out = Vec::new();
        for ctr in pod["spec"][key].as_array().into_iter().flatten() {
            let view = if held(ctr) {
                Some(ContainerView::of(c, ns, pod, ctr)?).filter(ContainerView::held)
            } else {
                None
            };
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a.as_str().unwrap_or("").to_string())
                    .collect()
            };
            let (command, args) = (strings(&ctr["command"]), strings(&ctr["args"]));
            // busybox's image has no entrypoint and `sh` as its command; a
            // single-program image has its program as its entrypoint.
            let entry = super::runtime::entrypoint(ctr["image"].as_str().unwrap_or(""));
            let mut argv = match (command.is_empty(), args.is_empty(), entry) {
                (false, _, _) => [command, args].concat(),
                (true, _, Some(entry)) => [entry, args].concat(),
                (true, false, None) => args,
                (true, true, None) => vec!["sh".to_string()],
            };
            if let Some(v) = &view {
                argv = argv.iter().map(|a| v.expand(a)).collect();
            }
            let ports: Vec<(String, u16)> = ctr["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p["name"].as_str()?.to_string(),
                        u16::try_from(p["containerPort"].as_u64()?).ok()?,
                    ))
                })
                .collect();
            out.push(Spec {
                name: ctr["name"].as_str().unwrap_or("").to_string(),
                image: ctr["image"].as_str().unwrap_or("").to_string(),
                view,
                argv,
                readiness: Probe::of(&ctr["readinessProbe"], &ports),
                liveness: Probe::of(&ctr["livenessProbe"], &ports),
                startup: Probe::of(&ctr["startupProbe"], &ports),
            });
        }
        Ok(out)
    };
    let (init, main) = (specs("initContainers")?, specs("containers")?);
    let before = |key: &str, name: &str| {
        pod["status"][key]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .cloned()
    };
    let statuses = |key: &str, specs: &[Spec], waiting: &'static str| -> Vec<Status> {
        specs
            .iter()
            .map(|s| {
                let old = before(key, &s.name);
                let had_run = old.as_ref().is_some_and(|o| {
                    o["state"]["running"].is_object() || o["state"]["terminated"].is_object()
                });
                let restarts = old
                    .as_ref()
                    .and_then(|o| o["restartCount"].as_u64())
                    .unwrap_or(0);
                Status {
                    name: s.name.clone(),
                    image: s.image.clone(),
                    state: State::Waiting(waiting, None),
                    last: None,
                    restarts: restarts + u64::from(had_run && s.view.is_some()),
                    ready: false,
                    started: false,
                    done: false,
                }
            })
            .collect()
    };
    let waiting = if init.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let p = Pod {
        ns: ns.to_string(),
        name: pod["metadata"]["name"].as_str().unwrap_or("").to_string(),
        uid: uid.to_string(),
        policy: pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string(),
        dir: c.dir.join("pods").join(uid),
        init: Mutex::new(statuses("initContainerStatuses", &init, "PodInitializing")),
        main: Mutex::new(statuses("containerStatuses", &main, waiting)),
    };
    Ok((p, init, main))
}

/// Writes the pod's status from its containers' statuses (when the pod is still the
/// same pod), with an event when given one.
fn report(shared: &Shared, pod: &Pod, event_of: Option<(&str, &str, String)>) {
    let mut c = shared.cluster.lock();
    let Some(obj) = get(&c, "", "pods", Some(&pod.ns), &pod.name) else {
        return;
    };
    if obj["metadata"]["uid"] != pod.uid.as_str() || !obj["metadata"]["deletionTimestamp"].is_null()
    {
        return;
    }
    if let Some((kind, reason, message)) = &event_of {
        event(&mut c, &obj, kind, reason, message);
    }
    let init = pod.init.lock().clone();
    let main = pod.main.lock().clone();
    let initialized = init
        .iter()
        .all(|s| s.done && matches!(&s.state, State::Terminated(e) if e.code == 0));
    let ready = initialized && main.iter().all(|s| s.ready);
    let all_done = !main.is_empty() && main.iter().all(|s| s.done);
    let failed = init
        .iter()
        .any(|s| s.done && matches!(&s.state, State::Terminated(e) if e.code != 0));
    let old = &obj["status"];
    let conds = &old["conditions"];
    let mut status = old.clone();
    // Running once every container has started (a real node's Running: all created,
    // one at least running or restarting); Pending through the init containers.
    let begun = initialized
        && main.iter().all(|s| {
            !matches!(
                s.state,
                State::Waiting("ContainerCreating" | "PodInitializing", _)
            )
        });
    let phase = if failed {
        "Failed"
    } else if !begun {
        "Pending"
    } else if all_done {
        if main
            .iter()
            .all(|s| matches!(&s.state, State::Terminated(e) if e.code == 0))
        {
            "Succeeded"
        } else {
            "Failed"
        }
    } else {
        "Running"
    };
    status["phase"] = json!(phase);
    let (r, why) = match (phase, initialized, ready) {
        ("Succeeded", ..) => ("False", "PodCompleted"),
        ("Failed", ..) => ("False", "PodFailed"),
        (_, false, _) => ("False", "ContainersNotInitialized"),
        (_, _, false) => ("False", "ContainersNotReady"),
        _ => ("True", ""),
    };
    let unready: Vec<&str> = main
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let message = if r == "True" || phase != "Running" {
        String::new()
    } else if initialized {
        format!("containers with unready status: [{}]", unready.join(" "))
    } else {
        let pending: Vec<&str> = init
            .iter()
            .filter(|s| !s.done)
            .map(|s| s.name.as_str())
            .collect();
        format!("containers with incomplete status: [{}]", pending.join(" "))
    };
    let with_probe_time = |mut v: Value| {
        v["lastProbeTime"] = Value::Null;
        v
    };
    let keep = |ty: &str| {
        conds
            .as_array()
            .and_then(|a| a.iter().find(|c| c["type"] == ty))
            .cloned()
    };
    let mut conditions = vec![
        with_probe_time(condition(
            conds,
            "PodReadyToStartContainers",
            "True",
            "",
            "",
            false,
        )),
        with_probe_time(condition(
            conds,
            "Initialized",
            if initialized { "True" } else { "False" },
            if initialized {
                ""
            } else {
                "ContainersNotInitialized"
            },
            if initialized { "" } else { &message },
            false,
        )),
        with_probe_time(condition(conds, "Ready", r, why, &message, false)),
        with_probe_time(condition(conds, "ContainersReady", r, why, &message, false)),
    ];
    conditions.extend(keep("PodScheduled"));
    status["conditions"] = json!(conditions);
    status["containerStatuses"] = json!(main.iter().map(|s| s.json(&pod.uid)).collect::<Vec<_>>());
    if !init.is_empty() {
        status["initContainerStatuses"] =
            json!(init.iter().map(|s| s.json(&pod.uid)).collect::<Vec<_>>());
    }
    if let Err(e) = set_status(&mut c, "", "pods", &obj, status) {
        tracing::debug!("sandbox kubelet: status of pod {}: {}", pod.name, e.message);
    }
}

/// Runs the pod: its init containers in order, then its containers together, until
/// they end for good or the pod is cancelled.
async fn run_pod(
    shared: &Arc<Shared>,
    pod: Arc<Pod>,
    init: Vec<Spec>,
    main: Vec<Spec>,
    cancel: watch::Receiver<bool>,
) {
    report(shared, &pod, None);
    for (i, spec) in init.iter().enumerate() {
        if spec.view.is_none() {
            let mut s = pod.init.lock();
            s[i].state = State::Terminated(Ended {
                code: 0,
                reason: "Completed",
                started: now(),
                finished: now(),
                message: None,
            });
            s[i].done = true;
            continue;
        }
        container(shared, &pod, spec, true, i, cancel.clone()).await;
        let ok = {
            let s = pod.init.lock();
            s[i].done && matches!(&s[i].state, State::Terminated(e) if e.code == 0)
        };
        if !ok {
            report(shared, &pod, None);
            return;
        }
    }
    {
        let mut s = pod.main.lock();
        for st in s.iter_mut() {
            st.state = State::Waiting("ContainerCreating", None);
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, spec) in main.into_iter().enumerate() {
        let (shared, pod, cancel) = (shared.clone(), pod.clone(), cancel.clone());
        set.spawn(async move {
            if spec.view.is_none() {
                // Emulated: running and ready as long as the pod runs.
                {
                    let mut s = pod.main.lock();
                    s[i].state = State::Running { started: now() };
                    s[i].ready = true;
                    s[i].started = true;
                }
                report(&shared, &pod, None);
                return;
            }
            container(&shared, &pod, &spec, false, i, cancel).await;
        });
    }
    while set.join_next().await.is_some() {}
    report(shared, &pod, None);
}

/// Runs one container until it ends for good (its restart policy) or the pod is
/// cancelled; its status is `pod.init[i]` or `pod.main[i]`.
async fn container(
    shared: &Arc<Shared>,
    pod: &Arc<Pod>,
    spec: &Spec,
    init: bool,
    i: usize,
    mut cancel: watch::Receiver<bool>,
) {
    let Some(view) = &spec.view else { return };
    let mut backoff = BACKOFF;
    loop {
        if *cancel.borrow() {
            return;
        }
        let restarts = pod.statuses(init).lock()[i].restarts;
        let log = pod.log_dir(&spec.name).join(format!("{restarts}.log"));
        let started = now();
        let began = Instant::now();
        let outcome = match start(shared, view, &spec.argv, &pod.name, &log).await {
            Ok((process, pumps)) => {
                {
                    let mut s = pod.statuses(init).lock();
                    s[i].state = State::Running {
                        started: started.clone(),
                    };
                    s[i].started = spec.startup.is_none();
                    s[i].ready = !init && spec.readiness.is_none() && spec.startup.is_none();
                }
                report(
                    shared,
                    pod,
                    Some((
                        "Normal",
                        "Started",
                        format!("Started container {}", spec.name),
                    )),
                );
                let outcome =
                    supervise(shared, pod, spec, view, init, i, process, &mut cancel).await;
                let _ = pumps.await;
                outcome
            }
            Err(e) => Outcome::Exited(128, Some(format!("failed to start: {e}"))),
        };
        let (code, message, reason) = match outcome {
            Outcome::Cancelled => return,
            Outcome::Exited(code, message) => {
                (code, message, if code == 0 { "Completed" } else { "Error" })
            }
            Outcome::Unhealthy(code) => (code, None, "Error"),
        };
        let ended = Ended {
            code,
            reason,
            started,
            finished: now(),
            message,
        };
        let restart = match pod.policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => !init || code != 0,
        };
        {
            let mut s = pod.statuses(init).lock();
            s[i].ready = false;
            s[i].state = State::Terminated(ended.clone());
            s[i].done = !restart;
        }
        report(shared, pod, None);
        if !restart {
            return;
        }
        if began.elapsed() >= STABLE {
            backoff = BACKOFF;
        }
        let pod_id = format!("{}_{}({})", pod.name, pod.ns, pod.uid);
        {
            let mut s = pod.statuses(init).lock();
            s[i].last = Some(ended);
            s[i].state = State::Waiting(
                "CrashLoopBackOff",
                Some(format!(
                    "back-off {}s restarting failed container={} pod={pod_id}",
                    backoff.as_secs(),
                    spec.name
                )),
            );
        }
        report(
            shared,
            pod,
            Some((
                "Warning",
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {pod_id}",
                    spec.name
                ),
            )),
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancel.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        pod.statuses(init).lock()[i].restarts += 1;
    }
}

enum Outcome {
    Exited(i32, Option<String>),
    /// Killed after its liveness or startup probe failed (the exit code of the kill).
    Unhealthy(i32),
    Cancelled,
}

/// Starts the container's process with its output going to `log` line by line; the
/// second value ends when the output is written (the process's pipes closed).
async fn start(
    shared: &Arc<Shared>,
    view: &ContainerView,
    argv: &[String],
    pod_name: &str,
    log: &Path,
) -> std::io::Result<(Process, tokio::task::JoinHandle<()>)> {
    let v = view.clone();
    let dir = log.parent().map(Path::to_path_buf);
    let args = argv.to_vec();
    tokio::task::spawn_blocking(move || {
        v.prepare()?;
        v.reset(&args)?;
        if let Some(d) = dir {
            std::fs::create_dir_all(d)?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(std::io::Error::other)??;
    let cmd = view
        .start(argv, pod_name)
        .ok_or_else(|| std::io::Error::other("the container has no command"))?;
    // One pipe for stdout and stderr, so lines keep the order they were written in.
    let (reader, writer) = std::io::pipe()?;
    let (process, _) = Process::spawn_with(
        cmd,
        std::process::Stdio::null(),
        writer.try_clone()?.into(),
        writer.into(),
    )?;
    let output = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into())?;
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .await?;
    let (closed_tx, closed_rx) = watch::channel(false);
    shared
        .kubelet
        .live
        .lock()
        .insert(log.to_path_buf(), closed_rx);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let stream = |r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, name: &'static str| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let Some(r) = r else { return };
            let mut r = tokio::io::BufReader::new(r);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = (&mut r)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut line)
                    .await
                    .unwrap_or_default();
                if n == 0 {
                    return;
                }
                let full = line.last() == Some(&b'\n');
                if full {
                    line.pop();
                }
                let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                let mut entry =
                    format!("{ts} {name} {} ", if full { "F" } else { "P" }).into_bytes();
                entry.extend_from_slice(&line);
                entry.push(b'\n');
                if tx.send(entry).await.is_err() {
                    return;
                }
            }
        })
    };
    let out = stream(Some(Box::new(output)), "stdout");
    drop(tx);
    let shared = shared.clone();
    let path = log.to_path_buf();
    let writer = tokio::spawn(async move {
        let mut file = file;
        let mut size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        while let Some(entry) = rx.recv().await {
            if file.write_all(&entry).await.is_err() {
                break;
            }
            size += entry.len() as u64;
            if size > super::logs::MAX_LOG {
                // Rotated as a kubelet does (containerLogMaxSize): the newest part stays.
                let _ = file.flush().await;
                match super::logs::rotate(&path).await {
                    Ok((f, n)) => (file, size) = (f, n),
                    Err(e) => {
                        tracing::warn!("sandbox kubelet: cannot rotate {}: {e}", path.display());
                        break;
                    }
                }
            }
        }
        let _ = file.flush().await;
        let _ = out.await;
        shared.kubelet.live.lock().remove(&path);
        let _ = closed_tx.send(true);
    });
    // Running once the runtime says so: an exec right after must find the container.
    view.started(Duration::from_secs(10)).await;
    Ok((process, writer))
}

/// Waits for the process to exit while its probes run; kills it when the pod is
/// cancelled or its liveness (or startup) probe fails.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    shared: &Arc<Shared>,
    pod: &Arc<Pod>,
    spec: &Spec,
    view: &ContainerView,
    init: bool,
    i: usize,
    mut process: Process,
    cancel: &mut watch::Receiver<bool>,
) -> Outcome {
    let begun = tokio::time::Instant::now();
    // (probe, next run, consecutive successes, consecutive failures)
    let mut probes: Vec<(&'static str, &Probe, tokio::time::Instant, u32, u32)> = [
        ("Startup", spec.startup.as_ref()),
        ("Readiness", spec.readiness.as_ref()),
        ("Liveness", spec.liveness.as_ref()),
    ]
    .into_iter()
    .filter(|_| !init)
    .filter_map(|(k, p)| Some((k, p?, begun + p?.initial, 0, 0)))
    .collect();
    loop {
        let started = pod.statuses(init).lock()[i].started;
        let next = probes
            .iter()
            .filter(|(k, ..)| started || *k == "Startup")
            .map(|p| p.2)
            .min();
        tokio::select! {
            r = process.wait() => {
                return Outcome::Exited(r.map(|s| exit_code(&s)).unwrap_or(1), None);
            }
            _ = cancel.changed() => {
                process.kill();
                let _ = process.wait().await;
                return Outcome::Cancelled;
            }
            _ = tokio::time::sleep_until(next.unwrap_or(begun + Duration::from_secs(86400 * 365))), if next.is_some() => {}
        }
        let now_t = tokio::time::Instant::now();
        let due: Vec<usize> = (0..probes.len())
            .filter(|&k| probes[k].2 <= now_t && (started || probes[k].0 == "Startup"))
            .collect();
        for k in due {
            let (kind, probe) = (probes[k].0, probes[k].1);
            let result = check(view, &probe.action, probe.timeout, &pod.name).await;
            let entry = &mut probes[k];
            entry.2 = tokio::time::Instant::now() + probe.period;
            match &result {
                Ok(()) => {
                    entry.3 += 1;
                    entry.4 = 0;
                }
                Err(_) => {
                    entry.4 += 1;
                    entry.3 = 0;
                }
            }
            let (succ, fail) = (entry.3, entry.4);
            let mut changed = false;
            match kind {
                "Startup" if succ >= probe.success => {
                    let mut s = pod.statuses(init).lock();
                    changed = !s[i].started;
                    s[i].started = true;
                    if spec.readiness.is_none() {
                        s[i].ready = true;
                    }
                }
                "Readiness" if succ >= probe.success => {
                    let mut s = pod.statuses(init).lock();
                    changed = !s[i].ready;
                    s[i].ready = true;
                }
                "Readiness" if fail >= probe.failure => {
                    let mut s = pod.statuses(init).lock();
                    changed = s[i].ready;
                    s[i].ready = false;
                }
                "Liveness" | "Startup" if fail >= probe.failure => {
                    let why = result.err().unwrap_or_default();
                    report(
                        shared,
                        pod,
                        Some((
                            "Normal",
                            "Killing",
                            format!(
                                "Container {} failed {} probe, will be restarted",
                                spec.name,
                                kind.to_lowercase()
                            ),
                        )),
                    );
                    tracing::debug!("sandbox kubelet: {} of {}: {why}", kind, spec.name);
                    process.kill();
                    let code = process.wait().await.map(|s| exit_code(&s)).unwrap_or(137);
                    return Outcome::Unhealthy(code);
                }
                _ => {}
            }
            if let Err(why) = &result {
                report(
                    shared,
                    pod,
                    Some((
                        "Warning",
                        "Unhealthy",
                        format!("{kind} probe failed: {why}"),
                    )),
                );
            } else if changed {
                report(shared, pod, None);
            }
        }
    }
}

/// Carries out one probe; the error says why it failed, in the kubelet's words.
async fn check(
    view: &ContainerView,
    action: &Action,
    timeout: Duration,
    pod_name: &str,
) -> Result<(), String> {
    let run = async {
        match action {
            Action::Unsupported(what) => {
                tracing::debug!("sandbox kubelet: cannot probe {what} of pod {pod_name}: passed");
                Ok(())
            }
            Action::Exec(argv) => {
                let argv: Vec<String> = argv.iter().map(|a| view.expand(a)).collect();
                let cmd = view
                    .command(&argv, pod_name)
                    .ok_or_else(|| "the probe has no command".to_string())?;
                let (mut p, _) = Process::spawn(cmd, false, false, false)
                    .map_err(|e| format!("cannot run {argv:?}: {e}"))?;
                let status = p.wait().await.map_err(|e| e.to_string())?;
                match exit_code(&status) {
                    0 => Ok(()),
                    code => Err(format!("command {argv:?} exited with {code}")),
                }
            }
            Action::Tcp(port) => tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .map(drop)
                .map_err(|e| format!("dial tcp 127.0.0.1:{port}: {e}")),
            Action::Http { port, path } => {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .map_err(|e| format!("Get \"http://127.0.0.1:{port}{path}\": {e}"))?;
                let req = format!(
                    "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.33\r\n\r\n"
                );
                s.write_all(req.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut head = Vec::new();
                let mut r = tokio::io::BufReader::new(s);
                r.read_until(b'\n', &mut head)
                    .await
                    .map_err(|e| e.to_string())?;
                let line = String::from_utf8_lossy(&head);
                let code: u16 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| format!("not an HTTP answer: {:?}", line.trim()))?;
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "timeout: the probe took longer than {}s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_read_ports_by_number_and_name() {
        let ports = vec![("http".to_string(), 8080)];
        let p = Probe::of(
            &json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2}),
            &ports,
        )
        .unwrap();
        assert!(matches!(p.action, Action::Http { port: 8080, .. }));
        assert_eq!(p.period, Duration::from_secs(2));
        assert_eq!((p.success, p.failure), (1, 3));
        let p = Probe::of(&json!({"tcpSocket": {"port": 5432}}), &ports).unwrap();
        assert!(matches!(p.action, Action::Tcp(5432)));
        let p = Probe::of(&json!({"tcpSocket": {"port": "db"}}), &ports).unwrap();
        assert!(matches!(p.action, Action::Unsupported(_)));
        assert!(Probe::of(&Value::Null, &ports).is_none());
    }
}

//! Workloads of a namespace (with what each depends on, from the dependency closure)
//! and its claims (with the pods that use them).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use ratatui::layout::Constraint;
use serde_json::Value;

use crate::app::{App, ListState, Load, NsData, Row, Screen, Tone, View};
use crate::format;
use crate::keymap::Command;
use crate::page::{self, DESCRIBE, Offer, Page, YAML, YAML_PANE};
use crate::wizard_state::Purpose;
use ferry_k8s::graph;
use ferry_k8s::objects::ObjRef;

/// The workloads of a namespace.
pub struct Workloads;

/// The claims of a namespace.
pub struct Claims;

const WORKLOADS: &[Offer] = &[
    Offer::new(Command::Enter, "show the YAML").hint("open"),
    Offer::new(Command::Switch, "show the PVCs"),
    Offer::new(Command::Mark, "mark workloads").hint("mark"),
    Offer::new(Command::MarkAll, "mark every workload shown (again: none)"),
    Offer::new(
        Command::Backup,
        "back up the marked workloads and what they need",
    )
    .hint("backup"),
    Offer::new(Command::Migrate, "migrate them to another cluster")
        .hint("migrate")
        .changes(),
    Offer::new(Command::Clone, "clone them into a new namespace")
        .hint("clone")
        .changes(),
    YAML,
    YAML_PANE,
    DESCRIBE,
];

const CLAIMS: &[Offer] = &[
    Offer::new(Command::Enter, "show the YAML"),
    Offer::new(Command::Switch, "show the workloads").hint("workloads"),
    YAML,
    YAML_PANE,
    DESCRIBE,
];

/// The namespace's data, whichever of the two screens shows it.
fn ns_of<'a>(app: &'a App, view: &View) -> Option<&'a Load<NsData>> {
    match view {
        View::Workloads { cluster, ns, .. }
        | View::Pods { cluster, ns }
        | View::Pvcs { cluster, ns } => app.cluster(cluster).and_then(|c| c.ns.get(ns)),
        _ => None,
    }
}

fn load_ns(app: &mut App, view: &View, force: bool) {
    let (View::Workloads { cluster, ns, .. }
    | View::Pods { cluster, ns }
    | View::Pvcs { cluster, ns }) = view
    else {
        return;
    };
    if let Some(c) = app.cluster_mut(cluster)
        && (force || !c.ns.contains_key(ns))
    {
        // The list follows the cluster: a new follow reads it all first.
        c.ns.insert(ns.clone(), Load::Loading);
        app.refollow();
    }
}

/// Every object of the namespace shown, once loaded.
fn all_objects<'a>(app: &'a App, view: &View) -> &'a [Value] {
    ns_of(app, view)
        .and_then(Load::ready)
        .map_or(&[], |d| d.objects.as_slice())
}

fn object<'a>(app: &'a App, view: &View, key: &str) -> Option<&'a Value> {
    ns_of(app, view)
        .and_then(Load::ready)
        .and_then(|d| d.index.get(key).and_then(|i| d.objects.get(*i)))
}

/// Workloads and claims of a namespace swap places (`Switch`).
fn switch(app: &mut App, view: View) {
    let n = app.stack.len() - 1;
    app.stack[n] = Screen {
        view,
        list: ListState::default(),
    };
    app.select_first_selectable();
}

impl Page for Workloads {
    fn name(&self) -> &'static str {
        "workloads"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &["KIND", "NAME", "READY", "IMAGE", "AGE", "DEPENDS ON"],
            vec![Length(13), Fill(2), Length(9), Fill(2), Length(6), Fill(3)],
        )
    }

    /// Image, then age: the kind, name, readiness and dependencies stay.
    fn narrow(&self) -> &'static [usize] {
        &[3, 4]
    }

    fn offers(&self) -> &'static [Offer] {
        WORKLOADS
    }

    fn rows<'a>(&self, app: &'a App, view: &View) -> Load<Cow<'a, [Row]>> {
        let rows = page::held(ns_of(app, view), |d| &d.workload_rows);
        match (rows, view) {
            // `:deploy`, `:sts`, `:ds`: the rows of that kind (keys are `Kind/name`).
            (Load::Ready(rows), View::Workloads { kind: Some(k), .. }) => Load::Ready(Cow::Owned(
                rows.iter()
                    .filter(|r| r.key.split_once('/').is_some_and(|(kind, _)| kind == *k))
                    .cloned()
                    .collect(),
            )),
            (rows, _) => rows,
        }
    }

    fn load(&self, app: &mut App, view: &View, force: bool) {
        load_ns(app, view, force)
    }

    fn run(&self, app: &mut App, view: &View, command: Command) {
        match (command, view) {
            (Command::Enter | Command::YamlPane, _) => app.toggle_yaml(),
            (Command::Yaml, _) => app.open_yaml(),
            (Command::Describe, _) => app.open_describe(),
            (Command::Switch, View::Workloads { cluster, ns, .. }) => switch(
                app,
                View::Pvcs {
                    cluster: cluster.clone(),
                    ns: ns.clone(),
                },
            ),
            (Command::Mark, _) => app.toggle_mark(),
            (Command::MarkAll, _) => app.mark_all(),
            (Command::Backup, _) => app.backup(view),
            (Command::Migrate, _) => app.open_live_wizard(view, Purpose::Migrate),
            (Command::Clone, _) => app.open_live_wizard(view, Purpose::Clone),
            _ => {}
        }
    }

    fn object<'a>(&self, app: &'a App, view: &View, key: &str) -> Option<&'a Value> {
        object(app, view, key)
    }

    fn objects<'a>(&self, app: &'a App, view: &View) -> &'a [Value] {
        all_objects(app, view)
    }
}

impl Page for Claims {
    fn name(&self) -> &'static str {
        "pvcs"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &[
                "CLAIM", "STATUS", "SIZE", "CLASS", "ACCESS", "VOLUME", "USED BY",
            ],
            vec![
                Fill(2),
                Length(8),
                Length(7),
                Length(12),
                Length(14),
                Fill(2),
                Fill(2),
            ],
        )
    }

    /// Volume, access modes, then users: the claim, status, size and class stay.
    fn narrow(&self) -> &'static [usize] {
        &[5, 4, 6]
    }

    fn offers(&self) -> &'static [Offer] {
        CLAIMS
    }

    fn rows<'a>(&self, app: &'a App, view: &View) -> Load<Cow<'a, [Row]>> {
        page::held(ns_of(app, view), |d| &d.pvc_rows)
    }

    fn load(&self, app: &mut App, view: &View, force: bool) {
        load_ns(app, view, force)
    }

    fn run(&self, app: &mut App, view: &View, command: Command) {
        match (command, view) {
            (Command::Enter | Command::YamlPane, _) => app.toggle_yaml(),
            (Command::Yaml, _) => app.open_yaml(),
            (Command::Describe, _) => app.open_describe(),
            (Command::Switch, View::Pvcs { cluster, ns }) => switch(
                app,
                View::Workloads {
                    cluster: cluster.clone(),
                    ns: ns.clone(),
                    kind: None,
                },
            ),
            _ => {}
        }
    }

    fn object<'a>(&self, app: &'a App, view: &View, key: &str) -> Option<&'a Value> {
        object(app, view, key)
    }

    fn objects<'a>(&self, app: &'a App, view: &View) -> &'a [Value] {
        all_objects(app, view)
    }
}

/// The pods of a namespace (`:po`).
pub struct Pods;

const PODS: &[Offer] = &[
    Offer::new(Command::Enter, "show the YAML pane").hint("open"),
    YAML,
    YAML_PANE,
    DESCRIBE,
];

impl Page for Pods {
    fn name(&self) -> &'static str {
        "pods"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &[
                "NAME", "READY", "STATUS", "RESTARTS", "NODE", "AGE", "OWNER",
            ],
            vec![
                Fill(3),
                Length(6),
                Length(18),
                Length(8),
                Fill(2),
                Length(7),
                Fill(2),
            ],
        )
    }

    /// Owner, node, then restarts: the name, readiness and status stay.
    fn narrow(&self) -> &'static [usize] {
        &[6, 4, 3]
    }

    fn offers(&self) -> &'static [Offer] {
        PODS
    }

    fn rows<'a>(&self, app: &'a App, view: &View) -> Load<Cow<'a, [Row]>> {
        page::held(ns_of(app, view), |d| &d.pod_rows)
    }

    fn load(&self, app: &mut App, view: &View, force: bool) {
        load_ns(app, view, force)
    }

    fn run(&self, app: &mut App, _: &View, command: Command) {
        match command {
            Command::Enter | Command::YamlPane => app.toggle_yaml(),
            Command::Yaml => app.open_yaml(),
            Command::Describe => app.open_describe(),
            _ => {}
        }
    }

    fn object<'a>(&self, app: &'a App, view: &View, key: &str) -> Option<&'a Value> {
        object(app, view, key)
    }

    fn objects<'a>(&self, app: &'a App, view: &View) -> &'a [Value] {
        all_objects(app, view)
    }
}

/// A pod's row: ready containers, status (a waiting or terminated container's reason
/// over the phase, as kubectl shows it), restarts, node, age, owner.
fn pod_row(p: &Value, now: chrono::DateTime<chrono::Utc>) -> Row {
    let name = p["metadata"]["name"].as_str().unwrap_or_default();
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let containers = p["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    let restarts: u64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_u64())
        .sum();
    let reason = statuses.iter().find_map(|s| {
        s["state"]["waiting"]["reason"]
            .as_str()
            .or(s["state"]["terminated"]["reason"].as_str())
    });
    let status = if p["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else {
        reason.or(p["status"]["phase"].as_str()).unwrap_or("-")
    };
    let tone = match status {
        "Running" if ready == containers => Tone::Normal,
        "Succeeded" | "Completed" => Tone::Dim,
        "Running" | "Pending" | "ContainerCreating" | "PodInitializing" | "Terminating" => {
            Tone::Warn
        }
        // CrashLoopBackOff, ImagePullBackOff, Error, Failed…
        _ => Tone::Error,
    };
    let owner = p["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|o| o.first())
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["name"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "-".into());
    Row::new(
        format!("Pod/{name}"),
        vec![
            name.to_string(),
            format!("{ready}/{containers}"),
            status.to_string(),
            restarts.to_string(),
            p["spec"]["nodeName"].as_str().unwrap_or("-").to_string(),
            age(p, now),
            owner,
        ],
    )
    .tone(tone)
    .born(5, born(p))
}

/// The key of an object's row: `Kind/name`.
pub fn object_key(o: &Value) -> String {
    let r = ObjRef::of(o);
    format!("{}/{}", r.kind, r.name)
}

fn ready(o: &Value, kind: &str) -> String {
    match kind {
        "Deployment" | "StatefulSet" | "ReplicaSet" => format!(
            "{}/{}",
            o["status"]["readyReplicas"].as_u64().unwrap_or(0),
            o["spec"]["replicas"].as_u64().unwrap_or(1)
        ),
        "DaemonSet" => format!(
            "{}/{}",
            o["status"]["numberReady"].as_u64().unwrap_or(0),
            o["status"]["desiredNumberScheduled"].as_u64().unwrap_or(0)
        ),
        "Job" => format!("{} done", o["status"]["succeeded"].as_u64().unwrap_or(0)),
        "Pod" => o["status"]["phase"].as_str().unwrap_or("-").to_string(),
        _ => "-".into(),
    }
}

/// When an object was made, if it says.
fn born(o: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    o["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// An object's age at `now` (the cell as first made; drawing brings it up to date).
fn age(o: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    born(o).map_or_else(|| "-".into(), |t| format::age(t, now))
}

/// Rows for a namespace's objects.
pub fn ns_data(objects: Vec<Value>) -> NsData {
    let now = chrono::Utc::now();
    let mut index = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        index.insert(object_key(o), i);
    }
    let mut workload_rows = Vec::new();
    let graph = graph::Graph::new(&objects);
    for o in objects
        .iter()
        .filter(|o| graph::is_workload(&ObjRef::of(o)) && graph::controller_owner(o).is_none())
    {
        let r = ObjRef::of(o);
        let deps = graph.closure(std::slice::from_ref(&r));
        let mut by_kind: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in deps.keys().filter(|d| **d != r) {
            if matches!(
                d.kind.as_str(),
                "PersistentVolumeClaim" | "ConfigMap" | "Secret" | "Service" | "ServiceAccount"
            ) {
                by_kind.entry(d.kind.as_str()).or_default().push(&d.name);
            }
        }
        let deps_text = by_kind
            .iter()
            .map(|(k, v)| {
                let short = match *k {
                    "PersistentVolumeClaim" => "pvc",
                    "ConfigMap" => "cm",
                    "Secret" => "secret",
                    "Service" => "svc",
                    _ => "sa",
                };
                format!("{short}:{}", v.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let rd = ready(o, &r.kind);
        let tone = match rd.split_once('/') {
            Some((a, b)) if a != b => Tone::Warn,
            _ => Tone::Normal,
        };
        workload_rows.push(
            Row::new(
                format!("{}/{}", r.kind, r.name),
                vec![
                    r.kind.clone(),
                    r.name.clone(),
                    rd,
                    graph::pod_spec(o)
                        .and_then(|s| s["containers"][0]["image"].as_str())
                        .unwrap_or("-")
                        .to_string(),
                    age(o, now),
                    if deps_text.is_empty() {
                        "-".into()
                    } else {
                        deps_text
                    },
                ],
            )
            .tone(tone)
            .born(4, born(o)),
        );
    }
    let pods: Vec<&Value> = objects
        .iter()
        .filter(|o| ObjRef::of(o).is("", "Pod"))
        .collect();
    let pod_rows = pods.iter().map(|p| pod_row(p, now)).collect();
    let mut pvc_rows = Vec::new();
    for c in objects
        .iter()
        .filter(|o| ObjRef::of(o).is("", "PersistentVolumeClaim"))
    {
        let name = c["metadata"]["name"].as_str().unwrap_or_default();
        let users: Vec<&str> = pods
            .iter()
            .filter(|p| {
                p["spec"]["volumes"].as_array().is_some_and(|vs| {
                    vs.iter()
                        .any(|v| v["persistentVolumeClaim"]["claimName"].as_str() == Some(name))
                })
            })
            .filter_map(|p| p["metadata"]["name"].as_str())
            .collect();
        let phase = c["status"]["phase"].as_str().unwrap_or("-").to_string();
        let tone = if phase == "Bound" {
            Tone::Normal
        } else {
            Tone::Warn
        };
        let access = c["spec"]["accessModes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        pvc_rows.push(
            Row::new(
                format!("PersistentVolumeClaim/{name}"),
                vec![
                    name.to_string(),
                    phase,
                    c["spec"]["resources"]["requests"]["storage"]
                        .as_str()
                        .unwrap_or("-")
                        .to_string(),
                    c["spec"]["storageClassName"]
                        .as_str()
                        .unwrap_or("-")
                        .to_string(),
                    access,
                    c["spec"]["volumeName"].as_str().unwrap_or("-").to_string(),
                    if users.is_empty() {
                        "-".into()
                    } else {
                        users.join(",")
                    },
                ],
            )
            .tone(tone),
        );
    }
    NsData {
        objects,
        workload_rows,
        pod_rows,
        pvc_rows,
        index,
    }
}

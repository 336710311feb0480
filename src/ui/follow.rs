//! Lists that follow the cluster by watching it: the objects a shown list is made of
//! are listed once and then watched (a kube-rs watcher per kind), and the list's rows
//! are worked out again in the background when something changed, at most once a
//! [`pace`]. Nothing is read while nothing changes. A kind that cannot be watched (no
//! `watch` verb, or the right to watch refused) is listed again every
//! [`crate::live::LIVE_EVERY`] or so instead (`live::pace`).
//!
//! A [`Follow`] runs while its list shows: the app keeps one for the shown view
//! (`App::follow_shown`) and drops it, stopping its watches, when the view changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::app::{Msg, NsSummary};
use crate::error::TaskError;
use ferry_k8s::objects::{self, Catalog};
use ferry_providers::kubeconfig::LinkedCluster;

/// What a follow keeps up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The namespaces of a cluster, each with its counts (`Msg::Namespaces`).
    Namespaces { cluster: String },
    /// Every object of one namespace, and its rows (`Msg::NsObjects`).
    Namespace { cluster: String, ns: String },
}

impl Target {
    pub fn cluster(&self) -> &str {
        match self {
            Target::Namespaces { cluster } | Target::Namespace { cluster, .. } => cluster,
        }
    }
}

/// A follow running in the background. Dropping it stops it and its watches.
#[derive(Debug)]
pub struct Follow {
    pub target: Target,
    task: tokio::task::AbortHandle,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long to wait after rows were worked out in `took` before working them out again:
/// a second, or ten times what it took (a large namespace), at most
/// a minute (`live::LIVE_AT_MOST`): a busy namespace costs the console at most a tenth.
pub fn pace(took: Duration) -> Duration {
    took.saturating_mul(10)
        .clamp(Duration::from_secs(1), crate::live::LIVE_AT_MOST)
}

/// Changes that come close together are taken as one.
const BATCH: Duration = Duration::from_millis(100);

/// Starts following `target` of `cluster` on `rt`; results go to `tx` as messages.
pub fn start(rt: &Handle, tx: Sender<Msg>, cluster: LinkedCluster, target: Target) -> Follow {
    let t = target.clone();
    let task = rt.spawn(async move {
        match t {
            Target::Namespaces { .. } => namespaces(cluster, tx).await,
            Target::Namespace { ns, .. } => namespace(cluster, ns, tx).await,
        }
    });
    Follow {
        target,
        task: task.abort_handle(),
    }
}

/// What a kind's watch tells.
#[derive(Debug)]
enum Change {
    /// All of a kind's objects, listed (again).
    Listed(usize, Vec<(String, Value)>),
    Applied(usize, String, Value),
    Deleted(usize, String),
    /// A kind could not be listed (it is tried again).
    Failed(usize, kube::Error),
}

/// One kind as followed.
#[derive(Debug, Default)]
struct Kind {
    objects: BTreeMap<String, Value>,
    /// Listed once at least.
    listed: bool,
    /// Listed, or failed to be.
    known: bool,
}

/// The objects of every kind followed, by kind (in the order they were asked for).
#[derive(Debug, Default)]
struct Objects {
    kinds: Vec<Kind>,
}

impl Objects {
    fn new(n: usize) -> Objects {
        Objects {
            kinds: (0..n).map(|_| Kind::default()).collect(),
        }
    }

    /// Folds a change in; the error of a kind that could not be listed.
    fn apply(&mut self, c: Change) -> Option<(usize, kube::Error)> {
        match c {
            Change::Listed(i, all) => {
                if let Some(k) = self.kinds.get_mut(i) {
                    k.objects = all.into_iter().collect();
                    k.listed = true;
                    k.known = true;
                }
            }
            Change::Applied(i, key, doc) => {
                if let Some(k) = self.kinds.get_mut(i) {
                    k.objects.insert(key, doc);
                }
            }
            Change::Deleted(i, key) => {
                if let Some(k) = self.kinds.get_mut(i) {
                    k.objects.remove(&key);
                }
            }
            Change::Failed(i, e) => {
                if let Some(k) = self.kinds.get_mut(i) {
                    k.known = true;
                }
                return Some((i, e));
            }
        }
        None
    }

    /// Every kind was listed (or failed to be): there is something true to show.
    fn known(&self) -> bool {
        self.kinds.iter().all(|k| k.known)
    }

    /// Kind `i` was listed once at least.
    fn listed(&self, i: usize) -> bool {
        self.kinds.get(i).is_some_and(|k| k.listed)
    }

    fn of(&self, i: usize) -> impl Iterator<Item = &Value> {
        self.kinds
            .get(i)
            .into_iter()
            .flat_map(|k| k.objects.values())
    }

    fn all(&self) -> impl Iterator<Item = &Value> {
        self.kinds.iter().flat_map(|k| k.objects.values())
    }
}

/// One kind to follow.
struct Spec {
    api: Api<DynamicObject>,
    ar: ApiResource,
    watch: bool,
    /// What of each object is kept.
    keep: fn(Value) -> Value,
}

/// Follows each kind of `specs` in its own task (stopped with the set).
fn follow_kinds(specs: Vec<Spec>) -> (JoinSet<()>, mpsc::UnboundedReceiver<Change>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut set = JoinSet::new();
    for (i, s) in specs.into_iter().enumerate() {
        set.spawn(follow_kind(i, s, tx.clone()));
    }
    (set, rx)
}

fn key_of(doc: &Value) -> String {
    let m = &doc["metadata"];
    format!(
        "{}/{}",
        m["namespace"].as_str().unwrap_or(""),
        m["name"].as_str().unwrap_or("")
    )
}

/// Watches one kind (or lists it again and again where it cannot be watched), telling
/// `tx` what changed until nobody listens.
async fn follow_kind(i: usize, s: Spec, tx: mpsc::UnboundedSender<Change>) {
    let doc = |o: &DynamicObject| {
        let d = (s.keep)(objects::to_document(&s.ar, o));
        (key_of(&d), d)
    };
    if s.watch {
        let mut events = watcher::watcher(s.api.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listing = Vec::new();
        while let Some(ev) = events.next().await {
            let change = match ev {
                Ok(Event::Init) => {
                    listing.clear();
                    continue;
                }
                Ok(Event::InitApply(o)) => {
                    listing.push(doc(&o));
                    continue;
                }
                Ok(Event::InitDone) => Change::Listed(i, std::mem::take(&mut listing)),
                Ok(Event::Apply(o)) => {
                    let (k, d) = doc(&o);
                    Change::Applied(i, k, d)
                }
                Ok(Event::Delete(o)) => Change::Deleted(i, doc(&o).0),
                Err(watcher::Error::InitialListFailed(e)) => Change::Failed(i, e),
                // Listing is allowed and watching is not: list again and again below.
                Err(watcher::Error::WatchStartFailed(kube::Error::Api(st)))
                    if st.code == 403 || st.code == 405 =>
                {
                    tracing::info!(
                        "cannot watch {}: listing them every few seconds instead",
                        s.ar.plural
                    );
                    break;
                }
                Err(e) => {
                    tracing::debug!("watching {}: {e}", s.ar.plural);
                    continue;
                }
            };
            if tx.send(change).is_err() {
                return;
            }
        }
    }
    loop {
        let started = Instant::now();
        let change = match list(&s.api).await {
            Ok(items) => Change::Listed(i, items.iter().map(doc).collect()),
            Err(e) => Change::Failed(i, e),
        };
        if tx.send(change).is_err() {
            return;
        }
        tokio::time::sleep(crate::live::pace(started.elapsed())).await;
    }
}

/// Every object of `api`, page by page.
async fn list(api: &Api<DynamicObject>) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut lp = ListParams::default().limit(500);
    let mut out = Vec::new();
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(out),
        }
    }
}

/// Waits for changes and folds them in: the first, then those that came with it.
/// `None` once the kinds' tasks are gone. The errors of kinds that failed to list.
async fn gather(
    rx: &mut mpsc::UnboundedReceiver<Change>,
    objects: &mut Objects,
    batch: bool,
) -> Option<Vec<(usize, kube::Error)>> {
    let mut failed = Vec::new();
    let first = rx.recv().await?;
    failed.extend(objects.apply(first));
    if batch {
        tokio::time::sleep(BATCH).await;
    }
    while let Ok(c) = rx.try_recv() {
        failed.extend(objects.apply(c));
    }
    Some(failed)
}

/// Works `f` out on a blocking thread (the runtime's threads keep moving data), giving
/// the objects back with its result and how long it took.
async fn work_out<T: Send + 'static>(
    objects: Objects,
    f: impl FnOnce(&Objects) -> T + Send + 'static,
) -> Option<(Objects, T, Duration)> {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let out = f(&objects);
        (objects, out, started.elapsed())
    })
    .await
    .ok()
}

fn send(tx: &Sender<Msg>, m: Msg) -> bool {
    tx.send(m).is_ok()
}

async fn client(cluster: &LinkedCluster) -> Result<kube::Client, TaskError> {
    cluster
        .client()
        .await
        .map_err(|e| TaskError::Client(Arc::new(e)))
}

/// The kinds counted on the namespaces screen, namespaces first.
fn summary_kinds() -> [ApiResource; 6] {
    [
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<PersistentVolumeClaim>(&()),
        ApiResource::erase::<Pod>(&()),
        ApiResource::erase::<Deployment>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<DaemonSet>(&()),
    ]
}

/// What the namespaces screen needs of an object: its name and namespace, a
/// namespace's phase, a claim's request.
fn counted(doc: Value) -> Value {
    let m = &doc["metadata"];
    json!({
        "metadata": {"name": m["name"], "namespace": m["namespace"]},
        "status": {"phase": doc["status"]["phase"]},
        "spec": {"resources": {"requests": {"storage": doc["spec"]["resources"]["requests"]["storage"]}}},
    })
}

/// The namespaces of a cluster and their counts, as they are now.
fn summaries(o: &Objects) -> Vec<NsSummary> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out: Vec<NsSummary> = o
        .of(0)
        .map(|n| NsSummary {
            name: text(&n["metadata"]["name"]),
            status: text(&n["status"]["phase"]),
            ..NsSummary::default()
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    let at: std::collections::HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let mut bump = |doc: &Value, f: &dyn Fn(&mut NsSummary)| {
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or_default();
        if let Some(s) = at.get(ns).and_then(|i| out.get_mut(*i)) {
            f(s);
        }
    };
    for c in o.of(1) {
        let r = c["spec"]["resources"]["requests"]["storage"]
            .as_str()
            .and_then(ferry_k8s::plan::parse_quantity)
            .unwrap_or(0);
        bump(c, &|s| {
            s.pvcs += 1;
            s.requested += r;
        });
    }
    for p in o.of(2) {
        bump(p, &|s| s.pods += 1);
    }
    for w in (3..6).flat_map(|i| o.of(i)) {
        bump(w, &|s| s.workloads += 1);
    }
    out
}

/// Follows the namespaces of `cluster` and what each holds.
async fn namespaces(cluster: LinkedCluster, tx: Sender<Msg>) {
    let name = cluster.name.clone();
    let client = match client(&cluster).await {
        Ok(c) => c,
        Err(e) => {
            send(&tx, Msg::Namespaces(name, Err(e)));
            return;
        }
    };
    let specs = summary_kinds()
        .into_iter()
        .map(|ar| Spec {
            api: Api::all_with(client.clone(), &ar),
            ar,
            watch: true,
            keep: counted,
        })
        .collect();
    let (_kinds, mut rx) = follow_kinds(specs);
    let mut objects = Objects::new(6);
    let mut shown = false;
    loop {
        let Some(failed) = gather(&mut rx, &mut objects, shown).await else {
            return;
        };
        for (i, e) in failed {
            if i != 0 {
                tracing::debug!("cannot count the namespaces' objects of kind {i}: {e}");
                continue;
            }
            // Without the right to list namespaces, one can still be opened by name.
            let next = match &e {
                kube::Error::Api(s) if s.code == 403 => ". Open one directly with :ns NAME",
                _ => "",
            };
            tracing::warn!("cannot list the namespaces of {name}: {e}");
            if !shown {
                let what = format!("the namespaces of {name}");
                if !send(
                    &tx,
                    Msg::Namespaces(name.clone(), Err(TaskError::list(what, e, next))),
                ) {
                    return;
                }
            }
        }
        // The namespaces themselves must have been listed; the counts may be missing.
        if !objects.known() || !objects.listed(0) {
            continue;
        }
        let Some((back, list, took)) = work_out(objects, summaries).await else {
            return;
        };
        objects = back;
        shown = true;
        if !send(&tx, Msg::Namespaces(name.clone(), Ok(list))) {
            return;
        }
        tokio::time::sleep(pace(took)).await;
    }
}

/// Follows every object of namespace `ns` of `cluster` (Events left out, as `ferry
/// workloads` lists them) and works out the namespace's rows when they change.
async fn namespace(cluster: LinkedCluster, ns: String, tx: Sender<Msg>) {
    let name = cluster.name.clone();
    let failed = |e| Msg::NsObjects(name.clone(), ns.clone(), Err(e));
    let client = match client(&cluster).await {
        Ok(c) => c,
        Err(e) => {
            send(&tx, failed(e));
            return;
        }
    };
    let catalog = match Catalog::discover(&client).await {
        Ok(c) => c,
        Err(e) => {
            send(
                &tx,
                failed(TaskError::Discover {
                    cluster: name.clone(),
                    source: Arc::new(e),
                }),
            );
            return;
        }
    };
    let specs: Vec<Spec> = catalog
        .resources
        .into_iter()
        .filter(|r| r.namespaced && r.listable && r.ar.kind != "Event")
        .map(|r| Spec {
            api: Api::namespaced_with(client.clone(), &ns, &r.ar),
            watch: r.watchable,
            ar: r.ar,
            keep: |doc| doc,
        })
        .collect();
    let n = specs.len();
    let (_kinds, mut rx) = follow_kinds(specs);
    let mut objects = Objects::new(n);
    let mut shown = false;
    loop {
        let Some(failed) = gather(&mut rx, &mut objects, shown).await else {
            return;
        };
        // A kind that cannot be listed here is left out, as `ferry workloads` does.
        for (i, e) in failed {
            tracing::debug!("cannot list kind {i} in {ns} of {name}: {e}");
        }
        if !objects.known() {
            continue;
        }
        let Some((back, data, took)) = work_out(objects, |o| {
            crate::screens::workloads::ns_data(o.all().cloned().collect())
        })
        .await
        else {
            return;
        };
        objects = back;
        shown = true;
        if !send(&tx, Msg::NsObjects(name.clone(), ns.clone(), Ok(data))) {
            return;
        }
        tokio::time::sleep(pace(took)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> (String, Value) {
        let d = json!({"metadata": {"name": name}, "status": {"phase": "Active"}});
        (key_of(&d), d)
    }

    fn claim(ns: &str, name: &str, size: &str) -> (String, Value) {
        let d = counted(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns, "labels": {"a": "b"}},
            "spec": {"resources": {"requests": {"storage": size}}, "accessModes": ["ReadWriteOnce"]},
        }));
        (key_of(&d), d)
    }

    #[test]
    fn the_namespaces_show_once_listed_and_follow_changes() {
        let mut o = Objects::new(6);
        assert!(!o.known());
        o.apply(Change::Listed(0, vec![ns("b"), ns("a")]));
        let gone = kube::Error::Api(
            kube::core::Status::failure("forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        // A kind that cannot be listed counts as none.
        assert!(o.apply(Change::Failed(2, gone)).is_some());
        for i in [1, 3, 4, 5] {
            o.apply(Change::Listed(i, vec![]));
        }
        assert!(o.known() && o.listed(0) && !o.listed(2));
        let s = summaries(&o);
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"],
            "by name"
        );
        let (k, c) = claim("a", "data", "2Gi");
        o.apply(Change::Applied(1, k.clone(), c));
        o.apply(Change::Applied(
            1,
            claim("a", "logs", "1Gi").0,
            claim("a", "logs", "1Gi").1,
        ));
        o.apply(Change::Applied(
            1,
            claim("zz", "x", "1Gi").0,
            claim("zz", "x", "1Gi").1,
        ));
        let s = summaries(&o);
        assert_eq!((s[0].pvcs, s[0].requested), (2, 3 << 30));
        assert_eq!(
            s[1].pvcs, 0,
            "a claim of a namespace not listed counts nowhere"
        );
        o.apply(Change::Deleted(1, k));
        assert_eq!(summaries(&o)[0].pvcs, 1);
        // Listed again (a watch that fell behind): what was listed replaces all.
        o.apply(Change::Listed(0, vec![ns("c")]));
        assert_eq!(summaries(&o).len(), 1);
    }

    #[test]
    fn only_what_the_counts_need_is_kept() {
        let (_, c) = claim("a", "data", "2Gi");
        assert!(c["metadata"].get("labels").is_none());
        assert!(c["spec"].get("accessModes").is_none());
        assert_eq!(c["spec"]["resources"]["requests"]["storage"], "2Gi");
    }

    #[test]
    fn rows_are_worked_out_at_most_once_a_second_or_a_tenth_of_the_time() {
        assert_eq!(pace(Duration::from_millis(5)), Duration::from_secs(1));
        assert_eq!(pace(Duration::from_millis(300)), Duration::from_secs(3));
        assert_eq!(pace(Duration::from_secs(20)), crate::live::LIVE_AT_MOST);
    }
}

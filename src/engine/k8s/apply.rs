//! Carrying out a restore plan wave by wave: definitions (and waiting until they are
//! established), namespaces, identity and configuration, claims with their data
//! streamed in through a mover, then the workloads that use them, then routing. Each
//! object gets its source's field managers back once it is in place.
//!
//! A failure does not stop the other objects of the plan (unless what depends on it
//! cannot work); the [`Report`] says what succeeded, what failed and what to do.
//! Running the same restore again skips what exists and claims already holding the
//! snapshot's data (they carry [`RESTORED_ANNOTATION`]), so a retry after a dropped
//! connection resumes where it stopped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kube::api::{Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::lease::JobLease;
use super::listing;
use super::mover::{self, Mover, MoverOptions, RunAs};
use super::objects::{self, Catalog, ObjRef};
use super::pipe;
use super::placement::Placement;
use super::plan::{Change, Plan, PlanItem, VolumePlan};
use super::references::{self, Finding};
use super::{JobProgress, K8sError, RESTORED_ANNOTATION, Result, streaming, within};
use ferry_repo::{self as eng, Repository};

mod agents;

/// What happened to one object or volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub object: ObjRef,
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// The end of a restore.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub snapshot: String,
    pub target_cluster: String,
    pub objects: Vec<Outcome>,
    pub volumes: Vec<Outcome>,
    pub bytes_restored: u64,
    pub duration_secs: f64,
    /// What the restore created that still points at the source, as the target
    /// answered each write ([`references::scan`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn failed(&self) -> Vec<&Outcome> {
        self.objects
            .iter()
            .chain(self.volumes.iter())
            .filter(|o| !o.ok)
            .collect()
    }

    pub fn succeeded(&self) -> usize {
        self.objects
            .iter()
            .chain(self.volumes.iter())
            .filter(|o| o.ok)
            .count()
    }

    /// The folder of a state directory that restore reports go to.
    pub fn dir(state: &std::path::Path) -> std::path::PathBuf {
        state.join("reports")
    }

    /// Writes the report as JSON into `dir` (created if missing) as
    /// `restore-<time>-<snapshot>.json`; the path it was written to. `ferry restore
    /// --retry` reads it back.
    pub fn save(&self, dir: &std::path::Path) -> Result<std::path::PathBuf> {
        let failed = |path: &std::path::Path, detail: String| K8sError::Report {
            path: path.display().to_string(),
            detail,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e.to_string()))?;
        let path = dir.join(format!(
            "restore-{}-{}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"),
            self.snapshot
        ));
        let json = serde_json::to_vec_pretty(self).map_err(|e| failed(&path, e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| failed(&path, e.to_string()))?;
        Ok(path)
    }

    /// The command that retries what failed, from the report saved at `path`, into
    /// the kubeconfig context `context`.
    pub fn retry_command(&self, context: &str, path: &std::path::Path) -> String {
        format!(
            "ferry restore {} --context {} --retry {} --yes",
            self.snapshot,
            context,
            path.display()
        )
    }
}

/// Why one object was not put in place.
struct Failure {
    message: String,
    remedy: Option<String>,
    /// The target stopped answering: the rest of the restore is not attempted.
    unreachable: bool,
}

impl Failure {
    fn api(e: &kube::Error) -> Failure {
        Failure {
            message: crate::cluster::explain(e),
            remedy: remedy(e),
            unreachable: is_transport(e),
        }
    }
}

/// The request never got an answer: the connection failed, not the cluster's judgement.
fn is_transport(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
}

/// What the report says of what was never attempted because the target went away.
const GONE_REMEDY: &str = "the target stopped answering: check the connection, then run the restore again with --retry; what arrived is kept";

/// What to do about an API error, in words.
fn remedy(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(s) => match s.code {
            403 => Some("you may not do this on the target: ask for the rights, or restore where you have them".into()),
            409 => Some("it exists: restore with --conflict update, or delete it first".into()),
            422 => Some("the target refuses the object as invalid: check the transformations in the plan".into()),
            404 => Some("its namespace or type is missing on the target: run the restore again after fixing the plan's problems".into()),
            _ => None,
        },
        _ => Some("the target did not answer: check the connection and run the restore again; it resumes".into()),
    }
}

/// Carries out `plan`. Blocking problems refuse the whole plan. What dead jobs left
/// in the target's namespaces is removed first; the movers this job starts carry its
/// ID and lease ([`super::lease`]).
pub async fn apply(
    client: &kube::Client,
    repo: &Repository,
    plan: &Plan,
    mover: &MoverOptions,
    progress: &Arc<JobProgress>,
) -> Result<Report> {
    if plan.blocking() > 0 {
        return Err(K8sError::PlanBlocked(plan.blocking()));
    }
    let limit = mover.stall_timeout;
    if plan.volumes.iter().any(|v| v.restore_data) {
        let namespaces: Vec<String> = plan
            .volumes
            .iter()
            .filter_map(|v| v.target.namespace.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let swept = super::lease::sweep(client, &namespaces, false, limit).await;
        for f in &swept.removed {
            progress.log(format!(
                "removed {f}, left behind by a job that did not finish"
            ));
        }
        for p in &swept.problems {
            progress.log(format!("cleanup of earlier jobs' leftovers: {p}"));
        }
    }
    let lease = JobLease::start(client, limit);
    let r = apply_with(client, repo, plan, mover, progress, &lease).await;
    lease.release().await;
    r
}

async fn apply_with(
    client: &kube::Client,
    repo: &Repository,
    plan: &Plan,
    mover: &MoverOptions,
    progress: &Arc<JobProgress>,
    lease: &JobLease,
) -> Result<Report> {
    let started = Instant::now();
    let mut catalog = within(
        mover.stall_timeout,
        || "discovering the target's API".into(),
        async { Catalog::discover(client).await },
    )
    .await?;
    let mut report = Report {
        snapshot: plan.snapshot.clone(),
        target_cluster: plan.target_cluster.clone(),
        ..Report::default()
    };
    let waves = plan.waves();
    progress.add_objects(waves.iter().map(|w| w.len() as u64).sum(), 0);
    let access = if plan.volumes.iter().any(|v| v.restore_data) {
        let (access, choice) = super::agent::AgentAccess::of(repo, &mover.agent).await?;
        progress.log(format!("volume data: {} ({})", choice.path, choice.why));
        access
    } else {
        None
    };
    let total_bytes: u64 = plan
        .volumes
        .iter()
        .filter(|v| v.restore_data)
        .map(|v| v.bytes)
        .sum();
    let total_files: u64 = plan
        .volumes
        .iter()
        .filter(|v| v.restore_data)
        .map(|v| v.files)
        .sum();
    progress.data.add_total(total_files, total_bytes);
    progress.data.set_totals_final();
    let mut failed_refs: HashSet<ObjRef> = HashSet::new();
    let needles = references::Needles::of(&plan.mapping);
    // What the waves put in place, for the claims' data (thousands of claims among
    // tens of thousands of objects).
    let placed: HashSet<&ObjRef> = waves.iter().flatten().map(|i| &i.target).collect();
    for (n, wave) in waves.iter().enumerate() {
        progress.check()?;
        progress.set_phase(format!("wave {} of {}", n + 1, waves.len()));
        // Objects whose dependencies failed are not attempted.
        let (blocked, ready): (Vec<&&PlanItem>, Vec<&&PlanItem>) = wave.iter().partition(|i| {
            super::graph::references(&i.object)
                .iter()
                .any(|r| failed_refs.contains(r))
        });
        for i in blocked {
            report.objects.push(Outcome {
                object: i.target.clone(),
                ok: false,
                message: "not attempted: something it depends on failed".into(),
                remedy: Some("fix the failures above and run the restore again".into()),
            });
            failed_refs.insert(i.target.clone());
            progress.add_objects(0, 1);
        }
        let cat = &catalog;
        let limit = mover.stall_timeout;
        // The stream goes by position: a stream of borrowed items is not provably
        // `Send` to the compiler (rust-lang/rust#110338), one that borrows them is.
        let ready = &ready;
        let needles = &needles;
        let mapping = &plan.mapping;
        let results: Vec<(Outcome, bool, Vec<Finding>)> = futures::stream::iter(0..ready.len())
            .map(|n| async move {
                let i = ready[n];
                let r = put_object(client, cat, i, limit).await;
                progress.add_objects(0, 1);
                match r {
                    Ok(placed) => {
                        let found = isolation(i, placed.answer.as_deref(), needles, mapping);
                        (
                            Outcome {
                                object: i.target.clone(),
                                ok: true,
                                message: placed.message,
                                remedy: None,
                            },
                            false,
                            found,
                        )
                    }
                    Err(f) => (
                        Outcome {
                            object: i.target.clone(),
                            ok: false,
                            message: f.message,
                            remedy: f.remedy,
                        },
                        f.unreachable,
                        Vec::new(),
                    ),
                }
            })
            .buffer_unordered(OBJECTS_IN_FLIGHT)
            .collect()
            .await;
        let gone = results.iter().any(|(_, unreachable, _)| *unreachable);
        let results: Vec<Outcome> = results
            .into_iter()
            .map(|(o, _, found)| {
                report.findings.extend(found);
                o
            })
            .collect();
        for o in &results {
            if o.ok {
                progress.log(format!("{}: {}", o.object, o.message));
            } else {
                progress.log(format!("FAILED {}: {}", o.object, o.message));
                failed_refs.insert(o.object.clone());
            }
        }
        report.objects.extend(results);
        if gone {
            return Ok(abandon(report, plan, &waves[n + 1..], progress, started));
        }
        // Definitions must be established before their resources are created.
        for i in wave
            .iter()
            .filter(|i| i.target.kind == "CustomResourceDefinition")
        {
            if !failed_refs.contains(&i.target)
                && let Err(e) = wait_established(client, &i.target.name, limit).await
            {
                failed_refs.insert(i.target.clone());
                report.objects.push(Outcome {
                    object: i.target.clone(),
                    ok: false,
                    message: e.to_string(),
                    remedy: Some("check the definition on the target (`kubectl get crd`)".into()),
                });
            }
        }
        // New definitions serve new types: ask the cluster again.
        if wave
            .iter()
            .any(|i| i.target.kind == "CustomResourceDefinition")
        {
            catalog = within(limit, || "discovering the target's API".into(), async {
                Catalog::discover(client).await
            })
            .await?;
        }
        // Claims of this wave get their data before anything later uses them; claims
        // kept as they are (they exist) get theirs before the first wave's end.
        let in_wave: HashSet<&ObjRef> = wave.iter().map(|i| &i.target).collect();
        let due: Vec<&VolumePlan> = plan
            .volumes
            .iter()
            .filter(|v| v.restore_data)
            .filter(|v| {
                let here = in_wave.contains(&v.target);
                let kept = n == 0 && !placed.contains(&v.target);
                (here || kept) && !failed_refs.contains(&v.target)
            })
            .collect();
        let results: Vec<(&VolumePlan, Result<u64>)> = match &access {
            Some(a) if !due.is_empty() => {
                agents::restore(client, a, plan, due, mover, lease, progress).await
            }
            _ => {
                let mut out = Vec::new();
                for v in due {
                    progress.check()?;
                    let r = restore_volume(client, repo, plan, v, mover, lease, progress).await;
                    let gone = matches!(r, Err(K8sError::Unreachable { .. }));
                    out.push((v, r));
                    if gone {
                        break;
                    }
                }
                out
            }
        };
        for (v, r) in results {
            match r {
                Ok(bytes) => {
                    report.bytes_restored += bytes;
                    report.volumes.push(Outcome {
                        object: v.target.clone(),
                        ok: true,
                        message: format!("{} files, {}", v.files, ferry_repo::units::bytes(bytes)),
                        remedy: None,
                    });
                }
                Err(e) if e.is_cancelled() => return Err(K8sError::Cancelled),
                Err(e @ K8sError::Unreachable { .. }) => {
                    report.volumes.push(Outcome {
                        object: v.target.clone(),
                        ok: false,
                        message: e.to_string(),
                        remedy: Some(GONE_REMEDY.into()),
                    });
                    progress.volume(
                        v.target.namespace.as_deref().unwrap_or(""),
                        &v.target.name,
                        |s| s.state = "stopped: the target did not answer".into(),
                    );
                    return Ok(abandon(report, plan, &waves[n + 1..], progress, started));
                }
                Err(e) => {
                    failed_refs.insert(v.target.clone());
                    progress.volume(
                        v.target.namespace.as_deref().unwrap_or(""),
                        &v.target.name,
                        |s| s.state = format!("failed: {e}"),
                    );
                    report.volumes.push(Outcome {
                        object: v.target.clone(),
                        ok: false,
                        message: e.to_string(),
                        remedy: Some("run the restore again: claims whose data arrived are skipped, the others start over".into()),
                    });
                }
            }
        }
    }
    // Volumes whose claims were kept (skip) but not refilled are not outcomes.
    report
        .findings
        .sort_by(|a, b| (&a.object, &a.path).cmp(&(&b.object, &b.path)));
    for f in &report.findings {
        progress.log(format!(
            "isolation: {} {}: {} ({})",
            f.object, f.path, f.message, f.fix
        ));
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    progress.set_phase("done");
    Ok(report)
}

/// What an object the restore put in place still points at in the source, as the
/// target answered its last write (`answer`; the object as sent when there is none, or
/// it does not decode). An object whose answer cannot hold a finding is not decoded.
fn isolation(
    i: &PlanItem,
    answer: Option<&str>,
    needles: &references::Needles,
    mapping: &super::transform::Mapping,
) -> Vec<Finding> {
    let secret = i.target.is("", "Secret");
    let live = match answer {
        Some(text) if !needles.may_find(text, secret) => return Vec::new(),
        Some(text) => serde_json::from_str::<Value>(text).ok(),
        None => None,
    };
    references::scan(live.as_ref().unwrap_or(&i.object), mapping)
}

/// Ends a restore whose target stopped answering: what the remaining waves hold, and
/// every volume whose data did not arrive, are reported as not attempted.
fn abandon(
    mut report: Report,
    plan: &Plan,
    rest: &[Vec<&PlanItem>],
    progress: &JobProgress,
    started: Instant,
) -> Report {
    for i in rest.iter().flatten() {
        report.objects.push(Outcome {
            object: i.target.clone(),
            ok: false,
            message: "not attempted: the target stopped answering".into(),
            remedy: Some(GONE_REMEDY.into()),
        });
        progress.add_objects(0, 1);
    }
    for v in plan.volumes.iter().filter(|v| v.restore_data) {
        if !report.volumes.iter().any(|o| o.object == v.target) {
            report.volumes.push(Outcome {
                object: v.target.clone(),
                ok: false,
                message: "not attempted: the target stopped answering".into(),
                remedy: Some(GONE_REMEDY.into()),
            });
        }
    }
    progress.log("the target stopped answering: the restore stopped; run it again to resume");
    report.duration_secs = started.elapsed().as_secs_f64();
    progress.set_phase("stopped: the target did not answer");
    report
}

/// Objects of one wave created at once: an API server takes many creates in parallel
/// (its priority and fairness queue them), and a whole cluster is tens of thousands of
/// objects.
const OBJECTS_IN_FLIGHT: usize = 32;

/// An object put in place: what was done, in words, and the target's answer to the
/// last write (the object as it stored it), when there was one.
struct Placed {
    message: String,
    answer: Option<String>,
}

/// Creates or replaces one object, then gives it its source's field managers back
/// ([`give_owners_back`]); each request waits at most `limit`.
async fn put_object(
    client: &kube::Client,
    catalog: &Catalog,
    i: &PlanItem,
    limit: Duration,
) -> std::result::Result<Placed, Failure> {
    let res = catalog
        .find(&i.target.group, &i.target.kind)
        .ok_or_else(|| Failure {
            message: format!("the target does not serve {}", i.target.type_name()),
            remedy: Some("install its definition on the target first".into()),
            unreachable: false,
        })?;
    // The object goes as the plan holds it, and the answers are read as text: a
    // whole cluster is tens of thousands of these.
    let request = kube::core::Request::new(
        objects::api(client, res, i.target.namespace.as_deref()).resource_url(),
    );
    let body = serde_json::to_vec(&i.object).map_err(|e| Failure {
        message: format!("cannot encode the object: {e}"),
        remedy: None,
        unreachable: false,
    })?;
    let pp = PostParams {
        dry_run: false,
        field_manager: Some("ferry".into()),
    };
    let unanswered = || Failure {
        message: format!("the target did not answer within {} s", limit.as_secs()),
        remedy: Some(GONE_REMEDY.into()),
        unreachable: true,
    };
    let sent = match i.action {
        Change::Create => request.create(&pp, body),
        Change::Update => request.replace(&i.target.name, &pp, body),
        Change::Skip => {
            return Ok(Placed {
                message: "skipped".into(),
                answer: None,
            });
        }
    };
    let done = if i.action == Change::Create {
        "created"
    } else {
        "updated"
    };
    let answer = match tokio::time::timeout(limit, send(client, sent)).await {
        Err(_) => return Err(unanswered()),
        Ok(Ok(text)) => text,
        Ok(Err(e)) if i.action == Change::Create && objects::is_conflict(&e) => {
            return Ok(Placed {
                message: "exists already; kept".into(),
                answer: None,
            });
        }
        Ok(Err(e)) => return Err(Failure::api(&e)),
    };
    Ok(match give_owners_back(client, &request, i, limit).await {
        Ok(Some(later)) => Placed {
            message: done.into(),
            answer: Some(later),
        },
        Ok(None) => Placed {
            message: done.into(),
            answer: Some(answer),
        },
        Err(why) => Placed {
            message: format!(
                "{done}; its field managers were not carried over, so Ferry owns its fields ({why})"
            ),
            answer: Some(answer),
        },
    })
}

/// Sends a request built for the API and returns the answer's text, without decoding
/// it.
async fn send(
    client: &kube::Client,
    request: std::result::Result<http::Request<Vec<u8>>, kube::core::request::Error>,
) -> std::result::Result<String, kube::Error> {
    client
        .request_text(request.map_err(kube::Error::BuildRequest)?)
        .await
}

/// Puts the source's field managers ([`PlanItem::managed_fields`]) back on the object
/// just created or replaced, as Velero restores them: a merge patch of
/// `metadata.managedFields` alone, which an API server takes as the object's ownership
/// without adding the patching manager. Without it `ferry` would own every field, and
/// the first server-side apply by the source's tool (`helm upgrade`) would conflict
/// with it. The entries are kept as they were, fields the transformation changed
/// included: they record ownership, not values. It cannot ride on the create: an API
/// server's field manager compares a created object with an empty one, so the creating
/// manager takes every field it sends from the entries sent with it, and only a write
/// that changes nothing else keeps them as they are. Why it did not happen, in words;
/// the object stays either way. Returns the target's answer (the object as it now is),
/// none when there was nothing to give back.
async fn give_owners_back(
    client: &kube::Client,
    request: &kube::core::Request,
    i: &PlanItem,
    limit: Duration,
) -> std::result::Result<Option<String>, String> {
    if i.managed_fields.is_empty() {
        return Ok(None);
    }
    let patch = json!({"metadata": {"managedFields": i.managed_fields}});
    let pp = PatchParams {
        field_manager: Some("ferry".into()),
        ..PatchParams::default()
    };
    let patch = request.patch(&i.target.name, &pp, &Patch::Merge(&patch));
    match tokio::time::timeout(limit, send(client, patch)).await {
        Ok(Ok(text)) => Ok(Some(text)),
        Ok(Err(e)) => Err(crate::cluster::explain(&e)),
        Err(_) => Err(format!(
            "the target did not answer within {} s",
            limit.as_secs()
        )),
    }
}

async fn wait_established(client: &kube::Client, name: &str, limit: Duration) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = within(
            limit,
            || format!("waiting for the definition {name}"),
            async {
                api.get(name)
                    .await
                    .map_err(|e| K8sError::api(format!("definition {name}"), &e))
            },
        )
        .await;
        if let Ok(c) = got {
            let established = c
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(K8sError::Invalid(format!(
                "the definition {name} was not established within 60 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Streams a claim's data from the repository into the target claim.
async fn restore_volume(
    client: &kube::Client,
    repo: &Repository,
    plan: &Plan,
    v: &VolumePlan,
    opts: &MoverOptions,
    lease: &JobLease,
    progress: &Arc<JobProgress>,
) -> Result<u64> {
    let ns = v.target.namespace.clone().unwrap_or_default();
    let tree = v.stored_tree()?;
    progress.volume(&ns, &v.target.name, |s| {
        s.state = "starting mover".into();
        s.files_total = v.files;
        s.bytes_total = v.bytes;
    });
    // Where Pod Security refuses a root mover: the user of the workload restored with
    // the claim, else of the pods using it now.
    let (user, placement) = workload_fit(client, plan, &ns, &v.target.name, opts, progress).await;
    let mover = Mover::start(
        client,
        &ns,
        &v.target.name,
        false,
        None,
        user.as_ref(),
        &placement,
        opts,
        lease,
    )
    .await?;
    if let Some(note) = &mover.unplaced {
        progress.log(format!("{ns}/{}: {note}", v.target.name));
    }
    if let Some(u) = &mover.user {
        progress.log(format!(
            "{}: Pod Security refuses a root mover here: writing as the workload's user {}{}, so every restored file belongs to that user, whoever owned it in the snapshot",
            v.target,
            u.uid,
            u.gid.map(|g| format!(":{g}")).unwrap_or_default()
        ));
    }
    let parts = streams_for(v.files, v.bytes, opts.streams);
    tracing::debug!(claim = %v.target, parts, "restoring through the exec path");
    let r = stream_in(&mover, repo, tree, parts, progress).await;
    mover.delete().await;
    let bytes = r?;
    mark_restored(client, plan, v, tree, opts, progress, bytes).await?;
    Ok(bytes)
}

/// Marks the claim as holding the snapshot's data (a retry then skips it) and its
/// volume as done.
async fn mark_restored(
    client: &kube::Client,
    plan: &Plan,
    v: &VolumePlan,
    tree: eng::Id,
    opts: &MoverOptions,
    progress: &Arc<JobProgress>,
    bytes: u64,
) -> Result<()> {
    let ns = v.target.namespace.clone().unwrap_or_default();
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(client.clone(), &ns);
    let marker = format!("{}:{}", plan.snapshot, tree.short());
    let patch = json!({"metadata": {"annotations": {RESTORED_ANNOTATION: marker}}});
    within(
        opts.stall_timeout,
        || format!("marking {} as restored", v.target),
        async {
            claims
                .patch(
                    &v.target.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(|e| K8sError::api(format!("cannot mark {} as restored", v.target), &e))
        },
    )
    .await?;
    progress.volume(&ns, &v.target.name, |s| {
        s.state = "done".into();
        s.files = v.files;
        s.bytes = bytes;
    });
    Ok(())
}

/// How many `tar -x` streams a volume of `files` files and `bytes` bytes is written
/// through: one for a small volume (each stream is an exec session and a writer
/// thread), up to `most` as it grows.
fn streams_for(files: u64, bytes: u64, most: usize) -> usize {
    const BYTES_PER_STREAM: u64 = 64 << 20;
    const FILES_PER_STREAM: u64 = 2_000;
    let by_size = (bytes / BYTES_PER_STREAM).max(files / FILES_PER_STREAM);
    usize::try_from(by_size.saturating_add(1))
        .unwrap_or(usize::MAX)
        .clamp(1, most.max(1))
}

/// Writes the tree into the mover's claim through `parts` archives extracted side by
/// side, then does what `tar -x` could not; returns the bytes written.
async fn stream_in(
    mover: &Mover,
    repo: &Repository,
    tree: eng::Id,
    parts: usize,
    progress: &Arc<JobProgress>,
) -> Result<u64> {
    let before = progress.data.snapshot().bytes_done;
    let streams =
        eng::ingest::TarPart::all(parts).map(|part| stream_part(mover, repo, tree, part, progress));
    // The first to fail ends the others: their pumps are dropped, so their writer
    // threads and their `tar` see their streams end (and the mover is deleted next).
    let rests = futures::future::try_join_all(streams).await?;
    let rest = rests
        .into_iter()
        .next()
        .ok_or_else(|| K8sError::Invalid("no archive was written".into()))?;
    // What `tar -x` left undone: sparse files' data around their holes, symlinks' times
    // (all in part 0).
    let script = listing::finish_script(&rest);
    mover
        .run_with_input(listing::fetch_command(mover.mount), Some(&script))
        .await?;
    Ok(progress.data.snapshot().bytes_done.saturating_sub(before))
}

/// One archive of the tree ([`eng::ingest::write_tar_part`]) into its own `tar -x`.
async fn stream_part(
    mover: &Mover,
    repo: &Repository,
    tree: eng::Id,
    part: eng::ingest::TarPart,
    progress: &Arc<JobProgress>,
) -> Result<eng::ingest::TarRest> {
    let cmd: Vec<String> = ["tar", "-x", "-f", "-", "-C", mover.mount]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let what = if part.count > 1 {
        format!(
            "{} (archive {} of {})",
            cmd.join(" "),
            part.index + 1,
            part.count
        )
    } else {
        cmd.join(" ")
    };
    let mut p = mover.exec(cmd, true).await?;
    let stdin = p
        .stdin()
        .ok_or_else(|| K8sError::Invalid("the mover took no input stream".into()))?;
    let mut stdout = p.stdout();
    let mut stderr = p.stderr();
    let (mut w, chunks) = pipe::writer();
    let writer = {
        let repo = repo.clone();
        let data = progress.data.clone();
        tokio::task::spawn_blocking(move || -> eng::Result<eng::ingest::TarRest> {
            let rest = eng::ingest::write_tar_part(&repo, &tree, part, &mut w, &data)?;
            use std::io::Write as _;
            // Dropping the writer afterwards ends the mover's input.
            w.flush().map_err(|e| eng::Error::Write {
                path: "the mover's input".into(),
                source: e,
            })?;
            Ok(rest)
        })
    };
    let pump = pipe::pump_in(chunks, stdin);
    let mut err = Vec::new();
    let drain = async {
        use tokio::io::AsyncReadExt as _;
        if let Some(s) = stdout.as_mut() {
            let _ = tokio::io::copy(s, &mut tokio::io::sink()).await;
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err).await;
        }
    };
    let streamed = streaming(mover.stall, &progress.data, async {
        tokio::join!(writer, pump, drain)
    })
    .await;
    // Otherwise the pump is gone, so the writer thread stops too, and so does the
    // mover's `tar`.
    let (w, _, ()) = streamed.or_stop(&mut p, || mover.stalled(&what))?;
    let w = w.map_err(|e| K8sError::Invalid(e.to_string()))?;
    let status = mover.finish(p, &what, &err).await;
    let rest = w.map_err(|e| match e {
        eng::Error::Cancelled => K8sError::Cancelled,
        e => K8sError::Volume {
            pvc: mover.name.clone(),
            detail: e.to_string(),
        },
    })?;
    status?;
    Ok(rest)
}

/// Whom Ferry's pod writing `claim` in `ns` runs as where Pod Security refuses root
/// (see [`RunAs::of_claim`]), and where it may run (see [`crate::placement`]): after
/// the workload this plan restores with the claim (its tolerations, and the nodes it
/// may run on, so that a new volume is made where it can mount it), else after the
/// pods using the claim now.
pub(crate) async fn workload_fit(
    client: &kube::Client,
    plan: &Plan,
    ns: &str,
    claim: &str,
    opts: &MoverOptions,
    progress: &JobProgress,
) -> (Option<RunAs>, Placement) {
    let items = || {
        plan.items
            .iter()
            .filter(move |i| i.target.namespace.as_deref() == Some(ns))
    };
    let user = items().find_map(|i| RunAs::of_claim(&i.object, claim));
    let placement = items().find_map(|i| Placement::of_workload(&i.object, claim));
    let (user, placement) = match (user, placement) {
        (Some(u), Some(p)) => (Some(u), p),
        (user, placement) => {
            let now = mover::holders(client, ns, claim).await;
            (user.or(now.user), placement.unwrap_or(now.placement))
        }
    };
    let mut placement = placement.tolerating(&opts.tolerations);
    if placement.nodes.is_some() && !crate::placement::binds_on_first_use(client, ns, claim).await {
        // Its volume exists, or is made at once: its own node affinity places the pod.
        placement.nodes = None;
    }
    if let Some(note) = placement.within_cluster(client).await {
        progress.log(format!("{ns}/{claim}: {note}"));
    }
    (user, placement)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn small_volumes_take_one_archive_and_large_ones_up_to_the_most() {
        assert_eq!(streams_for(0, 0, 4), 1);
        assert_eq!(streams_for(10, 1 << 20, 4), 1);
        assert_eq!(streams_for(10, 70 << 20, 4), 2);
        assert_eq!(streams_for(5_000, 1 << 20, 4), 3);
        assert_eq!(streams_for(1_000_000, 1 << 40, 4), 4);
        assert_eq!(streams_for(1_000_000, u64::MAX, 1), 1);
        assert_eq!(streams_for(1_000_000, 1 << 40, 0), 1);
    }

    #[test]
    fn a_saved_report_reads_back_and_a_bad_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            snapshot: "abcd1234".into(),
            target_cluster: "qa".into(),
            objects: vec![Outcome {
                object: ObjRef::new("", "ConfigMap", Some("shop"), "web"),
                ok: false,
                message: "forbidden".into(),
                remedy: None,
            }],
            ..Report::default()
        };
        let reports = Report::dir(dir.path());
        let path = report.save(&reports).unwrap();
        assert_eq!(path.parent(), Some(reports.as_path()));
        let back: Report = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back.failed().len(), 1);
        assert_eq!(
            report.retry_command("ctx", &path),
            format!(
                "ferry restore abcd1234 --context ctx --retry {} --yes",
                path.display()
            )
        );
        // A file where the folder should be.
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, b"x").unwrap();
        assert!(matches!(
            report.save(&blocked),
            Err(K8sError::Report { .. })
        ));
    }
}

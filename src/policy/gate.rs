//! The check every job that moves workloads makes before it plans anything, for the
//! command line and the console alike: load and verify the repository's policy, ask each
//! involved cluster who the user is, decide every source→target namespace pair, and
//! record a refusal in the audit trail. An allowed job carries a [`Gate`] to its end,
//! where [`finish`] appends its audit record.
//!
//! Async, for the console's tasks; repository I/O runs on blocking threads.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use super::audit::{self, AuditRecord, Outcome};
use super::document::{Action, ScrubRule};
use super::eval::{Decision, Identity, Location, Request};
use super::store::{self, ActivePolicy};

use super::{PolicyError, Result, identity};
use ferry_k8s::plan::{self, Plan};
use ferry_providers::kubeconfig::LinkedCluster;
use ferry_repo::Repository;

/// A cluster a job reads from or writes to, and the client to ask it (None when Ferry
/// does not talk to it, e.g. where a restored capture was taken).
#[derive(Clone)]
pub struct Place {
    pub base: Location,
    pub client: Option<kube::Client>,
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Place")
            .field("base", &self.base)
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl Place {
    pub fn new(cluster: &LinkedCluster, client: Option<&kube::Client>) -> Place {
        Place {
            base: Location {
                cluster: cluster.name.clone(),
                context: cluster.context.clone(),
                server: cluster.server.clone(),
                account: Location::account_from_arn(&[&cluster.context, &cluster.name]),
                namespace: None,
                namespace_labels: BTreeMap::new(),
                identity: cluster.identity.clone(),
            },
            client: client.cloned(),
        }
    }

    /// A cluster known only by its name (a capture's origin missing from the
    /// kubeconfig): its identity is unknown, so version 2 environments never contain it.
    pub fn named(name: &str) -> Place {
        Place {
            base: Location {
                cluster: name.to_string(),
                context: name.to_string(),
                account: Location::account_from_arn(&[name]),
                ..Location::default()
            },
            client: None,
        }
    }

    /// The location of namespace `ns` here, with the namespace's labels when the
    /// cluster can be asked.
    pub async fn at(&self, ns: Option<&str>) -> Location {
        let mut l = self.base.clone();
        l.namespace = ns.map(str::to_string);
        if let (Some(ns), Some(client)) = (ns, &self.client) {
            let api: Api<Namespace> = Api::all(client.clone());
            match api.get_opt(ns).await {
                Ok(Some(n)) => l.namespace_labels = n.metadata.labels.unwrap_or_default(),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(namespace = ns, error = %e, "cannot read namespace labels")
                }
            }
        }
        l
    }
}

/// What an allowed job carries: the decisions, what to scrub, its audit record so far.
#[derive(Debug, Clone)]
pub struct Gate {
    pub decisions: Vec<Decision>,
    pub scrub: Vec<ScrubRule>,
    pub record: AuditRecord,
    /// Whether a policy decided (false: the repository has none).
    pub has_policy: bool,
}

impl Gate {
    /// Notes the plan in the audit record.
    pub fn plan(&mut self, plan: &Plan) {
        self.record.plan = Some(format!(
            "{} to create, {} to update, {} to skip, {} volume(s) into {}",
            plan.count(plan::Change::Create),
            plan.count(plan::Change::Update),
            plan.count(plan::Change::Skip),
            plan.volumes.len(),
            plan.target_cluster
        ));
        if let Some(d) = &plan.data_path {
            let restore = format!("restore: {} ({})", d.path, d.why);
            self.record.data_path = Some(match self.record.data_path.take() {
                Some(capture) => format!("{capture}; {restore}"),
                None => restore,
            });
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PolicyError::Invalid(format!("internal error: {e}")))?
}

async fn load(repo: &Repository) -> Result<Option<ActivePolicy>> {
    let repo = repo.clone();
    blocking(move || store::load(&repo)).await
}

/// Appends `record`; a failure is logged and returned as a sentence for the user.
pub async fn append(repo: &Repository, record: AuditRecord) -> Option<String> {
    let repo = repo.clone();
    match blocking(move || audit::append(&repo, record)).await {
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "audit record not written");
            Some(format!("the audit trail was not written: {e}"))
        }
    }
}

fn describe(place: Option<&Place>, namespaces: &[&Option<String>]) -> Option<String> {
    let p = place?;
    let ns: Vec<&str> = namespaces.iter().filter_map(|n| n.as_deref()).collect();
    Some(if ns.is_empty() {
        p.base.cluster.clone()
    } else {
        format!("{}/{}", p.base.cluster, ns.join(","))
    })
}

/// What the policy says about a job: its version (None: no policy), the identities, a
/// decision per namespace pair (none without a policy).
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub policy_seq: Option<u64>,
    pub identities: Vec<Identity>,
    pub decisions: Vec<Decision>,
}

/// Loads the policy, asks the clusters who the user is and decides every pair: the one
/// decision that `ferry policy check`, [`preview`] and [`check`] (the jobs of the
/// command line and the console) all make. Errors: a policy that cannot be trusted, or
/// an unknown identity where a policy needs one.
pub async fn evaluate(
    repo: &Repository,
    action: Action,
    from: Option<&Place>,
    to: Option<&Place>,
    pairs: &[(Option<String>, Option<String>)],
) -> Result<Evaluation> {
    let who: Vec<&Place> = from.into_iter().chain(to).collect();
    evaluate_as(repo, action, &who, from, to, pairs).await
}

/// [`evaluate`] with the identities taken from the clusters of `who`.
async fn evaluate_as(
    repo: &Repository,
    action: Action,
    who: &[&Place],
    from: Option<&Place>,
    to: Option<&Place>,
    pairs: &[(Option<String>, Option<String>)],
) -> Result<Evaluation> {
    let policy = load(repo).await?;
    let mut identities = Vec::new();
    let mut asked: Vec<&str> = Vec::new();
    for p in who {
        let Some(client) = &p.client else { continue };
        if asked.contains(&p.base.cluster.as_str()) {
            continue;
        }
        asked.push(&p.base.cluster);
        match identity::who_am_i(client, &p.base.cluster).await {
            Ok(i) => identities.push(i),
            Err(e) if policy.is_some() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "no identity for the audit record"),
        }
    }
    let Some(active) = &policy else {
        return Ok(Evaluation {
            policy_seq: None,
            identities,
            decisions: Vec::new(),
        });
    };
    let mut decisions = Vec::new();
    for (f, t) in pairs {
        let req = Request {
            action,
            from: match from {
                Some(p) => Some(p.at(f.as_deref()).await),
                None => None,
            },
            to: match to {
                Some(p) => Some(p.at(t.as_deref()).await),
                None => None,
            },
            identities: identities.clone(),
        };
        decisions.push(active.policy.decide(&req));
    }
    Ok(Evaluation {
        policy_seq: Some(active.body.seq),
        identities,
        decisions,
    })
}

/// What [`check`] would say, without recording anything (for showing which targets the
/// policy denies before the user picks one): None when allowed, else why not.
pub async fn preview(
    repo: &Repository,
    action: Action,
    from: Option<&Place>,
    to: Option<&Place>,
    pairs: &[(Option<String>, Option<String>)],
) -> Option<String> {
    match evaluate(repo, action, from, to, pairs).await {
        Ok(ev) => ev.decisions.into_iter().find(|d| !d.allowed).map(|d| {
            if d.could.is_empty() {
                d.reason
            } else {
                format!("{}; who could: {}", d.reason, d.could.join(", "))
            }
        }),
        Err(e) => Some(e.to_string()),
    }
}

/// Decides whether a job may run. `pairs` are its (source namespace, target namespace)
/// pairs. A refusal (a denial, an untrustworthy policy, an unknown identity where a
/// policy needs it) is appended to the audit trail and returned as the error.
pub async fn check(
    repo: &Repository,
    action: Action,
    from: Option<&Place>,
    to: Option<&Place>,
    pairs: &[(Option<String>, Option<String>)],
) -> Result<Gate> {
    let who: Vec<&Place> = from.into_iter().chain(to).collect();
    check_as(repo, action, &who, from, to, pairs).await
}

/// [`check`] for an action that happens nowhere in particular (changing the policy):
/// the user's identity is asked from the clusters of `who`, the request has no source
/// and no target, so only rules without `from` and `to` decide it.
pub async fn check_subject(repo: &Repository, action: Action, who: &[&Place]) -> Result<Gate> {
    check_as(repo, action, who, None, None, &[(None, None)]).await
}

async fn check_as(
    repo: &Repository,
    action: Action,
    who: &[&Place],
    from: Option<&Place>,
    to: Option<&Place>,
    pairs: &[(Option<String>, Option<String>)],
) -> Result<Gate> {
    let cluster = |p: Option<&Place>| {
        p.map(|p| p.base.identity.clone())
            .filter(|i| i.is_pinned() || !i.server.is_empty())
    };
    let mut record = AuditRecord {
        from: describe(from, &pairs.iter().map(|p| &p.0).collect::<Vec<_>>()),
        to: describe(to, &pairs.iter().map(|p| &p.1).collect::<Vec<_>>()),
        from_cluster: cluster(from),
        to_cluster: cluster(to),
        ..AuditRecord::new(action)
    };
    let ev = match evaluate_as(repo, action, who, from, to, pairs).await {
        Ok(ev) => ev,
        Err(e) => {
            record.reason = e.to_string();
            append(repo, record).await;
            return Err(e);
        }
    };
    record.policy_seq = ev.policy_seq;
    record.identities = ev.identities;
    let decisions = ev.decisions;
    if ev.policy_seq.is_none() {
        let d = Decision::no_policy(action);
        record.allowed = true;
        record.reason = d.reason.clone();
        return Ok(Gate {
            decisions: vec![d],
            scrub: Vec::new(),
            record,
            has_policy: false,
        });
    }
    if let Some(d) = decisions.iter().find(|d| !d.allowed) {
        record.rule = d.rule.as_ref().map(|r| r.index);
        record.reason = d.reason.clone();
        let warning = append(repo, record).await;
        return Err(PolicyError::Denied {
            action,
            rule: d
                .rule
                .as_ref()
                .map(|r| format!("rule {}: {}", r.index, r.text)),
            reason: d.reason.clone(),
            could: d.could.clone(),
            unrecorded: warning,
        });
    }
    let mut scrub: Vec<ScrubRule> = Vec::new();
    for d in &decisions {
        tracing::info!(%action, reason = %d.reason, "policy decision");
        for s in &d.scrub {
            if !scrub.contains(s) {
                scrub.push(s.clone());
            }
        }
    }
    record.allowed = true;
    record.rule = decisions
        .first()
        .and_then(|d| d.rule.as_ref().map(|r| r.index));
    record.reason = decisions
        .iter()
        .map(|d| d.reason.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Gate {
        decisions,
        scrub,
        record,
        has_policy: true,
    })
}

/// Completes and appends the audit record of a job that ran: `Ok(true)` succeeded,
/// `Ok(false)` finished with failed parts, `Err` failed. Returns a warning for the user
/// when the record could not be written.
pub async fn finish(
    repo: &Repository,
    mut record: AuditRecord,
    result: std::result::Result<bool, String>,
) -> Option<String> {
    match result {
        Ok(true) => record.outcome = Outcome::Succeeded,
        Ok(false) => record.outcome = Outcome::Partial,
        Err(e) => {
            record.outcome = Outcome::Failed;
            record.detail = Some(e);
        }
    }
    record.time = chrono::Utc::now();
    append(repo, record).await
}

//! `ferry policy keygen|show|set|check|identify|rbac`, and how the other commands word
//! what the policy decided for their jobs ([`job_failed`], [`say_allowed`]): the jobs
//! themselves check the policy and write the audit record (`ferry_jobs`).

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::kube::{connect, linked};
use super::{Context, Exit};
use ferry_jobs::JobError;
use ferry_policy::gate;
use ferry_policy::scrub::Scrubbed;
use ferry_policy::{self as pol, Action, ActivePolicy, AdminKey, Decision};
use ferry_providers::kubeconfig::LinkedCluster;
use ferry_repo::Repository;

/// Exit status of `ferry policy check` when the answer is no.
pub const DENIED: u8 = 5;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create an administrator key file (Ed25519) and print its public key
    Keygen(KeygenArgs),
    /// Show the repository's policy, who signed it, and its history
    Show(ShowArgs),
    /// Validate a policy file, show how it differs from the current one, sign and store it
    Set(SetArgs),
    /// May I do this? Asks the clusters who you are and answers with the reason
    Check(CheckArgs),
    /// Print the selector that pins each cluster in a policy (server and CA, EKS ARN, AKS
    /// resource ID): what environments match on, whatever the contexts are named
    Identify(IdentifyArgs),
    /// The Kubernetes RBAC that makes clusters enforce an environment's boundaries
    Rbac(RbacArgs),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (a new file, readable by you only)
    #[arg(short, long)]
    pub out: PathBuf,
    /// A name for the key, shown with the policies it signs
    #[arg(long, default_value = "")]
    pub label: String,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// The policy document (YAML)
    pub file: PathBuf,
    /// The administrator key to sign with (from `ferry policy keygen`)
    #[arg(long)]
    pub key: PathBuf,
    /// Do not ask: store the policy after showing the difference
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// The cluster that says who you are, when the current policy has `change-policy`
    /// rules [default: the kubeconfig's current context]
    #[arg(long = "context", short = 'c')]
    pub context: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// backup, restore, migrate, clone, delete-snapshots or change-policy
    #[arg(long)]
    pub action: String,
    /// Where the data comes from: CONTEXT or CONTEXT/NAMESPACE
    #[arg(long)]
    pub from: Option<String>,
    /// Where the data goes: CONTEXT or CONTEXT/NAMESPACE
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// The clusters (context names, see `ferry clusters`) [default: every linked cluster]
    #[arg(long = "context", short = 'c')]
    pub contexts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RbacArgs {
    /// The environment
    #[arg(long)]
    pub env: String,
    /// The cluster whose namespaces in the environment get bindings [default: only the
    /// environment's literal namespace names]
    #[arg(long = "context", short = 'c')]
    pub context: Option<String>,
    /// Apply the objects to --context after showing what changes
    #[arg(long)]
    pub apply: bool,
    /// Do not ask before applying
    #[arg(short = 'y', long)]
    pub yes: bool,
}

pub fn run(ctx: &Context, cmd: PolicyCommand) -> anyhow::Result<Exit> {
    match cmd {
        PolicyCommand::Keygen(a) => keygen(a),
        PolicyCommand::Show(a) => show(ctx, a),
        PolicyCommand::Set(a) => set(ctx, a),
        PolicyCommand::Check(a) => check(ctx, a),
        PolicyCommand::Identify(a) => identify(ctx, a),
        PolicyCommand::Rbac(a) => rbac(ctx, a),
    }
}

fn keygen(a: KeygenArgs) -> anyhow::Result<Exit> {
    let key = AdminKey::generate(&a.label)?;
    key.save(&a.out)?;
    say!("{}", key.public());
    eprintln!(
        "administrator key written to {} (keep it offline: whoever holds it can change the policy).\n\
         List the public key above under `admins:` in the policy, then sign it with\n  \
         ferry policy set POLICY.yaml --key {}",
        a.out.display(),
        a.out.display()
    );
    Ok(Exit::SUCCESS)
}

fn load_policy(repo: &Repository) -> anyhow::Result<Option<ActivePolicy>> {
    pol::store::load(repo).with_context(|| {
        format!(
            "the policy of the repository at {} cannot be trusted",
            repo.location()
        )
    })
}

fn show(ctx: &Context, a: ShowArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let Some(p) = load_policy(&repo)? else {
        if a.json {
            say!("null");
        } else {
            say!(
                "the repository has no policy: everything is allowed. Write one (see README, \"Policies and audit\") and sign it with `ferry policy set FILE --key ADMIN.key`"
            );
        }
        return Ok(Exit::SUCCESS);
    };
    if a.json {
        let v = serde_json::json!({
            "seq": p.body.seq,
            "file": p.name,
            "signer": p.signer,
            "signerLabel": p.body.signer_label,
            "time": p.body.time,
            "admins": p.body.admins,
            "history": p.history.iter().map(|(n, s, k)| serde_json::json!({"file": n, "seq": s, "signer": k})).collect::<Vec<_>>(),
            "environments": p.policy.environments.iter().map(|e| &e.name).collect::<Vec<_>>(),
            "rules": p.policy.rules.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "documentVersion": p.policy.version,
            "lacks": p.policy.lacks(),
            "document": p.body.document,
        });
        say!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::SUCCESS);
    }
    say!(
        "policy version {} (policy/{}), signed {} by {}{}",
        p.body.seq,
        &p.name[..12.min(p.name.len())],
        p.body.time.format("%Y-%m-%d %H:%M:%S UTC"),
        p.signer,
        if p.body.signer_label.is_empty() {
            String::new()
        } else {
            format!(" ({})", p.body.signer_label)
        }
    );
    say!("administrators: {}", p.body.admins.join(", "));
    for w in p.policy.lacks() {
        eprintln!("warning: {w}");
    }
    say!(
        "rules (a deny gives way only to an allow inside it; then the most specific wins; deny by default):"
    );
    for (i, r) in p.policy.rules.iter().enumerate() {
        say!("  {:>3}. {r}", i + 1);
    }
    say!("---");
    print!("{}", p.body.document);
    Ok(Exit::SUCCESS)
}

/// Lines removed (`-`) and added (`+`) from `old` to `new`, with line numbers of `new`.
fn diff_lines(old: &str, new: &str) -> Vec<String> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // The table below is quadratic: very long documents are only summarised.
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        return if old == new {
            Vec::new()
        } else {
            vec![format!(
                "the document changed ({} lines before, {} now): too long to compare line by line",
                a.len(),
                b.len()
            )]
        };
    }
    // Longest common subsequence table, from the end.
    let mut l = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || l[i + 1][j] >= l[i][j + 1]) {
            out.push(format!("-     {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+{:>4} {}", j + 1, b[j]));
            j += 1;
        }
    }
    out
}

fn set(ctx: &Context, a: SetArgs) -> anyhow::Result<Exit> {
    let text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    let new = pol::Policy::parse(&text)
        .with_context(|| format!("{} was not stored", a.file.display()))?;
    for w in new.lacks() {
        eprintln!("warning: {w}");
    }
    let key = AdminKey::load(&a.key)?;
    let repo = ctx.open()?;
    let current = load_policy(&repo)?;
    let old_text = current
        .as_ref()
        .map(|c| c.body.document.as_str())
        .unwrap_or("");
    eprintln!(
        "{} ({} environment(s), {} rule(s)), signed by {}:",
        match &current {
            Some(c) => format!(
                "policy version {} replaces version {}",
                c.body.seq + 1,
                c.body.seq
            ),
            None =>
                "the first policy of this repository: from now on what it does not allow is denied"
                    .into(),
        },
        new.environments.len(),
        new.rules.len(),
        key.public()
    );
    let diff = diff_lines(old_text, &text);
    if diff.is_empty() {
        eprintln!("the document is the same as the current policy: nothing to store");
        return Ok(Exit::SUCCESS);
    }
    for line in &diff {
        eprintln!("{line}");
    }
    let mut record = change_permission(ctx, &repo, current.as_ref(), a.context.as_deref(), &key)?;
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "the policy above was not confirmed: pass --yes to store it without asking"
            );
        }
        eprint!("Sign and store this policy? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("not confirmed: the policy was not changed");
        }
    }
    record.plan = Some(format!(
        "policy version {} ({} line(s) of the document changed), signed by {}",
        current.as_ref().map_or(1, |c| c.body.seq + 1),
        diff.iter()
            .filter(|l| l.starts_with('+') || l.starts_with('-'))
            .count(),
        key.public()
    ));
    let result = pol::store::store(&repo, &text, &key);
    let outcome = match &result {
        Ok(_) => Ok(true),
        Err(e) => Err(e.to_string()),
    };
    if let Some(w) = ctx.rt.block_on(gate::finish(&repo, record, outcome)) {
        eprintln!("warning: {w}");
    }
    let stored = result?;
    say!(
        "policy version {} stored as policy/{} and required from now on",
        stored.body.seq,
        stored.name
    );
    Ok(Exit::SUCCESS)
}

/// Whether the user may change the policy, beyond holding an administrator key: when
/// the current policy has rules that name `change-policy`, the identity the cluster
/// `context` reports must be allowed by them (a denial is recorded and returned).
/// Returns the audit record of the change, to be completed.
fn change_permission(
    ctx: &Context,
    repo: &Repository,
    current: Option<&ActivePolicy>,
    context: Option<&str>,
    key: &AdminKey,
) -> anyhow::Result<pol::audit::AuditRecord> {
    let ruled = current.is_some_and(|c| {
        c.policy
            .rules
            .iter()
            .any(|r| r.actions.contains(&Action::ChangePolicy))
    });
    if !ruled {
        let mut record = pol::audit::AuditRecord::new(Action::ChangePolicy);
        record.allowed = true;
        record.policy_seq = current.map(|c| c.body.seq);
        record.reason = format!(
            "signed with administrator key {}{}",
            key.public(),
            if current.is_some() {
                " (no rule names change-policy: the administrator key decides)"
            } else {
                " (the first policy)"
            }
        );
        return Ok(record);
    }
    let (linked, client) = super::kube::connect(ctx, context).context(
        "the policy has change-policy rules, so Ferry must learn who you are from a cluster: pass --context",
    )?;
    let place = Place::new(&linked, Some(&client));
    match ctx
        .rt
        .block_on(gate::check_subject(repo, Action::ChangePolicy, &[&place]))
    {
        Ok(g) => {
            if let Some(d) = g.decisions.first() {
                eprintln!("allowed by policy: {}", d.reason);
            }
            Ok(g.record)
        }
        Err(e @ pol::PolicyError::Denied { .. }) => {
            Err(anyhow::Error::new(e).context("change-policy denied: the policy was not changed"))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "the policy of the repository at {} cannot be checked",
            repo.location()
        ))),
    }
}

pub(super) use ferry_policy::gate::Place;

/// The place a capture was taken from: its cluster as the kubeconfig knows it.
pub(super) fn origin(ctx: &Context, cluster: &str) -> Place {
    match linked(ctx).ok().and_then(|l| l.get(cluster).ok().cloned()) {
        Some(c) => Place::new(&c, None),
        None => Place::named(cluster),
    }
}

/// Says why the policy allowed a job (nothing when the repository has none).
pub(super) fn say_allowed(reason: Option<&str>) {
    if let Some(r) = reason {
        eprintln!("allowed by policy: {r}");
    }
}

/// A job's failure for the terminal: a denial by the policy prints the deciding rule and
/// who could do it instead (the job layer recorded it already) and says nothing was
/// changed; a policy that cannot be checked says so; anything else keeps the step that
/// failed as context. A warning that the audit record was not written is printed first.
pub(super) fn job_failed(
    action: Action,
    repo: &Repository,
    f: ferry_jobs::Failed,
) -> anyhow::Error {
    if let Some(w) = &f.unrecorded {
        eprintln!("warning: {w}");
    }
    match f.error {
        JobError::Policy(pol::PolicyError::Denied {
            rule,
            reason,
            could,
            unrecorded,
            ..
        }) => {
            eprintln!("denied by policy: {reason}");
            if could.is_empty() {
                eprintln!(
                    "no subject of the policy may do this; an administrator can change it with `ferry policy set`"
                );
            } else {
                eprintln!("who could do it instead: {}", could.join(", "));
            }
            if let Some(w) = unrecorded {
                eprintln!("warning: {w}");
            }
            anyhow::anyhow!(
                "{action} denied by the repository's policy{}: nothing was changed",
                rule.map(|r| format!(" ({r})")).unwrap_or_default()
            )
        }
        JobError::Policy(e) => anyhow::Error::new(e).context(format!(
            "{action} refused: the policy of the repository at {} cannot be checked",
            repo.location()
        )),
        e => match f.context {
            Some(c) => anyhow::Error::new(e).context(c),
            None => anyhow::Error::new(e),
        },
    }
}

/// Says what the policy's scrub rules took out of the objects to restore.
pub(super) fn say_scrubbed(done: &[Scrubbed]) {
    for s in done {
        match s.mode {
            pol::ScrubMode::Drop => eprintln!("policy scrub: {} is not copied", s.object),
            pol::ScrubMode::Placeholder => eprintln!(
                "policy scrub: {} is copied with empty values: fill in {} on the target",
                s.object,
                if s.keys.is_empty() {
                    "its data".to_string()
                } else {
                    s.keys.join(", ")
                }
            ),
        }
    }
}

/// Prints a warning that a job's audit record was not written.
pub(super) fn say_unrecorded(warning: Option<&str>) {
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
}

/// `CONTEXT` or `CONTEXT/NAMESPACE` (context names may hold `/` themselves).
fn split_place(ctx: &Context, s: &str) -> anyhow::Result<(LinkedCluster, Option<String>)> {
    let l = linked(ctx)?;
    if let Ok(c) = l.get(s) {
        return Ok((c.clone(), None));
    }
    if let Some((c, ns)) = s.rsplit_once('/')
        && let Ok(c) = l.get(c)
    {
        return Ok((c.clone(), Some(ns.to_string())));
    }
    anyhow::bail!(
        "{s:?} is not CONTEXT or CONTEXT/NAMESPACE of a linked cluster (see `ferry clusters`)"
    )
}

fn check(ctx: &Context, a: CheckArgs) -> anyhow::Result<Exit> {
    let action: Action = a.action.parse()?;
    let repo = ctx.open()?;
    let side = |s: &Option<String>| -> anyhow::Result<Option<(Place, Option<String>)>> {
        let Some(s) = s else { return Ok(None) };
        let (cluster, ns) = split_place(ctx, s)?;
        let (_, client) = connect(ctx, Some(&cluster.name))?;
        Ok(Some((Place::new(&cluster, Some(&client)), ns)))
    };
    let from = side(&a.from)?;
    let to = side(&a.to)?;
    // The very evaluation a job's gate makes (`gate::check`), without its record.
    let ev = ctx
        .rt
        .block_on(gate::evaluate(
            &repo,
            action,
            from.as_ref().map(|f| &f.0),
            to.as_ref().map(|t| &t.0),
            &[(
                from.as_ref().and_then(|f| f.1.clone()),
                to.as_ref().and_then(|t| t.1.clone()),
            )],
        ))
        .with_context(|| {
            format!(
                "the policy of the repository at {} cannot be checked",
                repo.location()
            )
        })?;
    let Some(d) = ev.decisions.into_iter().next() else {
        say!("allowed: {}", Decision::no_policy(action).reason);
        return Ok(Exit::SUCCESS);
    };
    for (side, place) in [("from", &from), ("to", &to)] {
        if let Some((p, _)) = place {
            say!("  {side} {}: {}", p.base.cluster, p.base.identity);
        }
    }
    if d.allowed {
        say!("allowed: {}", d.reason);
        for s in &d.scrub {
            say!("  scrub: {s}");
        }
        Ok(Exit::SUCCESS)
    } else {
        say!("denied: {}", d.reason);
        if d.could.is_empty() {
            say!("  nobody the policy names may do this");
        } else {
            say!("  who could: {}", d.could.join(", "));
        }
        Ok(Exit::from(DENIED))
    }
}

fn identify(ctx: &Context, a: IdentifyArgs) -> anyhow::Result<Exit> {
    let linked = linked(ctx)?;
    let clusters: Vec<&LinkedCluster> = if a.contexts.is_empty() {
        linked.clusters.iter().collect()
    } else {
        a.contexts
            .iter()
            .map(|c| linked.get(c))
            .collect::<Result<_, _>>()?
    };
    if clusters.is_empty() {
        anyhow::bail!("no linked cluster: see `ferry clusters`");
    }
    let mut unpinned = 0;
    for c in clusters {
        say!("# {} ({})", c.name, c.source_label());
        match c.identity.selector() {
            Ok(sel) => say!("- {sel}"),
            Err(why) => {
                unpinned += 1;
                say!("#   cannot be pinned: {why}");
            }
        }
    }
    if unpinned > 0 {
        eprintln!(
            "{unpinned} cluster(s) cannot be pinned by server and CA: give their kubeconfig entries a certificate-authority (and no insecure-skip-tls-verify), or link them through their cloud account (EKS, AKS)"
        );
    }
    Ok(Exit::SUCCESS)
}

fn rbac(ctx: &Context, a: RbacArgs) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    let p = load_policy(&repo)?.context(
        "the repository has no policy, so there is no boundary to enforce: set one with `ferry policy set`",
    )?;
    let env = p.policy.environment(&a.env)?;
    let mut namespaces: Vec<String> = Vec::new();
    let target = match &a.context {
        Some(c) => {
            let (cluster, client) = connect(ctx, Some(c))?;
            let list = ctx
                .rt
                .block_on(Api::<Namespace>::all(client.clone()).list(&ListParams::default()))
                .with_context(|| format!("cannot list the namespaces of {}", cluster.name))?;
            let place = Place::new(&cluster, None);
            for n in list.items {
                let Some(name) = n.metadata.name.clone() else {
                    continue;
                };
                let mut l = place.base.clone();
                l.namespace = Some(name.clone());
                l.namespace_labels = n.metadata.labels.unwrap_or_default();
                if p.policy.in_environment(env, &l) {
                    namespaces.push(name);
                }
            }
            Some((cluster, client))
        }
        None => {
            for s in &env.selectors {
                if let Some(ns) = &s.namespace
                    && !ns.contains(['*', '?'])
                    && !namespaces.contains(ns)
                {
                    namespaces.push(ns.clone());
                } else {
                    eprintln!(
                        "note: a selector of {} matches namespaces by pattern or label: name a cluster with --context to bind them",
                        env.name
                    );
                }
            }
            None
        }
    };
    namespaces.sort();
    let objects = pol::rbac::emit(&p.policy, &env.name, &namespaces);
    if !a.apply {
        say!(
            "# RBAC for environment {} (policy version {}): namespaces {}. Deny rules cannot be expressed in RBAC.",
            env.name,
            p.body.seq,
            if namespaces.is_empty() {
                "none".to_string()
            } else {
                namespaces.join(", ")
            }
        );
        for o in &objects {
            say!("---");
            print!(
                "{}",
                serde_saphyr::to_string(o).map_err(|e| anyhow::anyhow!("{e}"))?
            );
        }
        return Ok(Exit::SUCCESS);
    }
    let Some((cluster, client)) = target else {
        anyhow::bail!("--apply needs the cluster to apply to: add --context CONTEXT");
    };
    apply_rbac(ctx, &cluster, &client, &objects, a.yes)
}

fn apply_rbac(
    ctx: &Context,
    cluster: &LinkedCluster,
    client: &kube::Client,
    objects: &[Value],
    yes: bool,
) -> anyhow::Result<Exit> {
    let pp = PatchParams::apply("ferry-policy").force();
    // The plan: what each object does to the cluster.
    let mut plan = Vec::new();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or_default();
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ns = o["metadata"]["namespace"].as_str().map(str::to_string);
        let existing: Option<Value> = match (kind, &ns) {
            ("ClusterRole", _) => ctx
                .rt
                .block_on(Api::<ClusterRole>::all(client.clone()).get_opt(&name))?
                .map(|x| serde_json::json!({"rules": x.rules})),
            ("RoleBinding", Some(ns)) => ctx
                .rt
                .block_on(Api::<RoleBinding>::namespaced(client.clone(), ns).get_opt(&name))?
                .map(|x| serde_json::json!({"subjects": x.subjects, "roleRef": x.role_ref})),
            _ => anyhow::bail!("internal: cannot apply a {kind}"),
        };
        let wanted = match kind {
            "ClusterRole" => serde_json::json!({"rules": o["rules"]}),
            _ => serde_json::json!({"subjects": o["subjects"], "roleRef": o["roleRef"]}),
        };
        let verb = match existing {
            None => "create",
            Some(e) if serde_json::to_value(&e)? == normalise(&wanted) => "unchanged",
            Some(_) => "update",
        };
        let at = ns
            .as_deref()
            .map(|n| format!(" in {n}"))
            .unwrap_or_default();
        eprintln!("  {verb:<9} {kind} {name}{at}");
        plan.push((verb, kind.to_string(), name, ns, o.clone()));
    }
    if plan.iter().all(|p| p.0 == "unchanged") {
        say!(
            "{} already enforces this environment: nothing to apply",
            cluster.name
        );
        return Ok(Exit::SUCCESS);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            anyhow::bail!(
                "the changes above were not confirmed: pass --yes to apply them without asking"
            );
        }
        eprint!("Apply these RBAC objects to {}? [y/N] ", cluster.name);
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            anyhow::bail!("not confirmed: nothing was changed");
        }
    }
    let mut applied = 0;
    for (verb, kind, name, ns, obj) in plan {
        if verb == "unchanged" {
            continue;
        }
        match (kind.as_str(), ns) {
            ("ClusterRole", _) => {
                let typed: ClusterRole = serde_json::from_value(obj)?;
                ctx.rt
                    .block_on(Api::<ClusterRole>::all(client.clone()).patch(
                        &name,
                        &pp,
                        &Patch::Apply(&typed),
                    ))
                    .with_context(|| {
                        format!("cannot apply ClusterRole {name} to {}", cluster.name)
                    })?;
            }
            (_, Some(ns)) => {
                let typed: RoleBinding = serde_json::from_value(obj)?;
                ctx.rt
                    .block_on(Api::<RoleBinding>::namespaced(client.clone(), &ns).patch(
                        &name,
                        &pp,
                        &Patch::Apply(&typed),
                    ))
                    .with_context(|| {
                        format!(
                            "cannot apply RoleBinding {name} in {ns} to {}",
                            cluster.name
                        )
                    })?;
            }
            _ => continue,
        }
        applied += 1;
    }
    say!("{applied} RBAC object(s) applied to {}", cluster.name);
    Ok(Exit::SUCCESS)
}

/// `wanted` as the typed objects would serialise it (defaults filled, nulls dropped).
fn normalise(wanted: &Value) -> Value {
    if let Some(rules) = wanted.get("rules") {
        let typed: Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>> =
            serde_json::from_value(rules.clone()).ok();
        return serde_json::json!({ "rules": typed });
    }
    let subjects: Option<Vec<k8s_openapi::api::rbac::v1::Subject>> =
        serde_json::from_value(wanted["subjects"].clone()).ok();
    let role_ref: Option<k8s_openapi::api::rbac::v1::RoleRef> =
        serde_json::from_value(wanted["roleRef"].clone()).ok();
    serde_json::json!({"subjects": subjects, "roleRef": role_ref})
}

#[cfg(test)]
mod tests {
    use super::diff_lines;

    #[test]
    fn the_diff_shows_changed_lines_only() {
        let d = diff_lines("a\nb\nc\n", "a\nB\nc\nd\n");
        assert_eq!(d, ["-     b", "+   2 B", "+   4 d"]);
        assert!(diff_lines("same\n", "same\n").is_empty());
        assert_eq!(diff_lines("", "x"), ["+   1 x"]);
        let long = "x\n".repeat(3000);
        let d = diff_lines(&long, &format!("{long}y\n"));
        assert_eq!(d.len(), 1);
        assert!(d[0].contains("3000 lines before, 3001 now"), "{d:?}");
    }
}

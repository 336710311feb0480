//! The policy document: a YAML file administrators write (schema in docs/FORMAT.md,
//! "Policies and audit"), parsed into a checked [`Policy`].
//!
//! ```yaml
//! version: 2
//! admins: ["ed25519:3b6a27bc..."]
//! environments:
//!   - name: prod
//!     match:
//!       - {server: "https://prod.example:6443", ca: "sha256:9f86d0..."}
//!       - {eksArn: "arn:aws:eks:eu-west-1:123456789012:cluster/prod"}
//!   - name: qa
//!     match:
//!       - {server: "https://shared.example:6443", ca: "sha256:60303a...", namespace: "qa-*"}
//! rules:
//!   - allow: [clone]
//!     subjects: ["group:developers"]
//!     from: prod
//!     to: [qa]
//!     scrub:
//!       - kind: Secret
//!         mode: placeholder
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{PolicyError, Result};

/// The newest document version this Ferry reads (it reads every version from 1).
///
/// Version 2 added cluster identities to selectors (`ca`, `eksArn`, `aksId`) and
/// requires every selector to pin its clusters with them; version 1 documents still
/// parse (their environments match by kubeconfig names, see [`Policy::lacks`]).
pub const DOCUMENT_VERSION: u32 = 2;

/// The policy document as written (YAML).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    pub version: u32,
    /// Administrator public keys (`ed25519:<64 hex digits>`): who may sign the next
    /// version of the policy.
    pub admins: Vec<String>,
    #[serde(default)]
    pub environments: Vec<EnvironmentDoc>,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
}

/// A named set of clusters and namespaces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentDoc {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A location is in the environment when any selector matches it.
    #[serde(rename = "match")]
    pub selectors: Vec<Selector>,
}

/// Matches a location when every field it sets matches (glob patterns: `*` any run of
/// characters, `?` one character).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Selector {
    /// The kubeconfig context name (a name: it narrows, never pins, in version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The cluster's name in Ferry (`ferry clusters`; a name, like `context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The API server URL (version 2: as TLS checks it, see
    /// [`ferry_providers::kubeconfig::ClusterIdentity::server`]; it needs `ca`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `sha256:<64 hex digits>` of the cluster's CA certificate, or a list: matches when
    /// every CA the connection trusts is listed (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<OneOrMany>,
    /// An EKS cluster's ARN, as `DescribeCluster` reports it (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks_arn: Option<String>,
    /// An AKS cluster's ARM resource ID, as ARM reports it; case-insensitive (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aks_id: Option<String>,
    /// The cloud account: the AWS account ID of an EKS cluster's ARN (version 1: also
    /// of an ARN-shaped context or cluster name; version 2: only of the ARN EKS reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The namespace. Unset: any namespace, and the cluster as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels the namespace must carry (exact values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_labels: BTreeMap<String, String>,
}

/// One name or a list of names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A rule as written: exactly one of `allow` and `deny` names the actions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<OneOrMany>,
    /// `user:NAME`, `group:NAME` or `*`.
    pub subjects: OneOrMany,
    /// Environment names, or `*` (the default): where the data comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<OneOrMany>,
    /// Environment names, or `*` (the default): where the data goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<OneOrMany>,
    /// What is removed or replaced on the way (allow rules only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrub: Vec<ScrubRule>,
    /// Shown with every decision this rule makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a rule permits or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `ferry backup --context` (from: the cluster; no target).
    Backup,
    /// `ferry restore SNAP --context` (from: where the capture was taken).
    Restore,
    /// `ferry migrate`.
    Migrate,
    /// `ferry clone`.
    Clone,
    /// Removing snapshots (`forget`, `prune`).
    DeleteSnapshots,
    /// Setting the policy (besides the administrator signature it always needs).
    ChangePolicy,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Backup,
        Action::Restore,
        Action::Migrate,
        Action::Clone,
        Action::DeleteSnapshots,
        Action::ChangePolicy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Backup => "backup",
            Action::Restore => "restore",
            Action::Migrate => "migrate",
            Action::Clone => "clone",
            Action::DeleteSnapshots => "delete-snapshots",
            Action::ChangePolicy => "change-policy",
        }
    }

    /// Whether the action writes into a cluster (its `to`).
    pub fn writes(self) -> bool {
        matches!(self, Action::Restore | Action::Migrate | Action::Clone)
    }

    /// Whether the action reads from a cluster (its `from`).
    pub fn reads(self) -> bool {
        matches!(self, Action::Backup | Action::Migrate | Action::Clone)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Action {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                PolicyError::Invalid(format!(
                    "{s:?} is not an action (actions: {})",
                    Action::ALL.map(Action::name).join(", ")
                ))
            })
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// Who a rule is about: the user name and groups the clusters authenticate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    User(String),
    Group(String),
    Anyone,
}

impl Subject {
    /// How specific the subject is: a user (2) beats a group (1) beats anyone (0).
    pub fn rank(&self) -> u8 {
        match self {
            Subject::User(_) => 2,
            Subject::Group(_) => 1,
            Subject::Anyone => 0,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(u) => write!(f, "user:{u}"),
            Subject::Group(g) => write!(f, "group:{g}"),
            Subject::Anyone => f.write_str("*"),
        }
    }
}

impl std::str::FromStr for Subject {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Subject> {
        let s = s.trim();
        let bad = || {
            PolicyError::Invalid(format!(
                "{s:?} is not a subject: write user:NAME, group:NAME or *"
            ))
        };
        if s == "*" {
            return Ok(Subject::Anyone);
        }
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(bad());
        }
        match kind.trim() {
            "user" => Ok(Subject::User(name.to_string())),
            "group" => Ok(Subject::Group(name.to_string())),
            _ => Err(bad()),
        }
    }
}

/// What scrubbing does to a matching object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScrubMode {
    /// The object is not copied.
    Drop,
    /// The object is copied with every value of `data` (and `stringData`,
    /// `binaryData`) emptied, annotated with the keys to fill in. Secrets and ConfigMaps
    /// only.
    Placeholder,
}

/// Removes or blanks objects on their way into the target (attached to allow rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubRule {
    /// The object kind, e.g. `Secret`.
    pub kind: String,
    /// A glob on the object's name [default: every object of the kind].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub mode: ScrubMode,
}

impl fmt::Display for ScrubRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            ScrubMode::Drop => "not copied",
            ScrubMode::Placeholder => "replaced by placeholders",
        };
        match &self.name {
            Some(n) => write!(f, "{} {n} {mode}", self.kind),
            None => write!(f, "{}s {mode}", self.kind),
        }
    }
}

/// Where a rule applies: any location, or those in the named environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSet {
    Any,
    Named(Vec<String>),
}

impl fmt::Display for EnvSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvSet::Any => f.write_str("*"),
            EnvSet::Named(n) => f.write_str(&n.join(",")),
        }
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub effect: Effect,
    /// Empty: every action (`*`).
    pub actions: Vec<Action>,
    pub subjects: Vec<Subject>,
    pub from: EnvSet,
    pub to: EnvSet,
    pub scrub: Vec<ScrubRule>,
    pub reason: Option<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let effect = match self.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        };
        let subjects: Vec<String> = self.subjects.iter().map(Subject::to_string).collect();
        let actions = if self.actions.is_empty() {
            "*".to_string()
        } else {
            self.actions
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "{effect} {} {actions} from {} to {}",
            subjects.join(","),
            self.from,
            self.to
        )?;
        if !self.scrub.is_empty() {
            let s: Vec<String> = self.scrub.iter().map(ScrubRule::to_string).collect();
            write!(f, " (scrub: {})", s.join("; "))?;
        }
        Ok(())
    }
}

/// A checked environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    pub name: String,
    pub description: Option<String>,
    pub selectors: Vec<Selector>,
}

/// A checked policy: every name resolves, every pattern and subject is well formed.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub doc: PolicyDoc,
    /// The document's version (1 or 2): how selectors match (see `eval.rs`).
    pub version: u32,
    pub admins: Vec<String>,
    pub environments: Vec<Environment>,
    pub rules: Vec<Rule>,
}

/// A public key as written in `admins:`: `ed25519:` and 64 hex digits.
pub fn parse_admin_key(s: &str) -> Result<[u8; 32]> {
    let hex_part = s.trim().strip_prefix("ed25519:").ok_or_else(|| {
        PolicyError::Invalid(format!(
            "admin key {s:?} does not start with \"ed25519:\" (print yours with `ferry policy keygen`)"
        ))
    })?;
    let bytes = hex::decode(hex_part)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            PolicyError::Invalid(format!(
                "admin key {s:?} is not \"ed25519:\" followed by 64 hex digits"
            ))
        })?;
    Ok(bytes)
}

/// `sha256:<64 lowercase hex digits>` from `sha256:HEX`, bare `HEX` or `AB:CD:…` (as
/// openssl prints fingerprints).
pub fn normalize_fingerprint(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex_digits: String = t.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hex_digits).ok()?;
    (bytes.len() == 32).then(|| format!("sha256:{}", hex::encode(bytes)))
}

impl Selector {
    /// Whether it constrains the namespace.
    pub fn constrains_namespace(&self) -> bool {
        self.namespace.is_some() || !self.namespace_labels.is_empty()
    }

    /// Whether it matches whole clusters (no namespace constraint).
    pub fn is_cluster_wide(&self) -> bool {
        !self.constrains_namespace()
    }

    /// Whether it says anything about the cluster (a name, an address or an identity).
    pub fn names_cluster(&self) -> bool {
        self.context.is_some()
            || self.cluster.is_some()
            || self.server.is_some()
            || self.account.is_some()
            || self.ca.is_some()
            || self.eks_arn.is_some()
            || self.aks_id.is_some()
    }

    /// A namespace selector that names no cluster (version 1 only).
    pub fn is_unscoped(&self) -> bool {
        self.constrains_namespace() && !self.names_cluster()
    }

    /// The CA fingerprints it lists (normalized when the policy was checked).
    pub fn ca_list(&self) -> Vec<String> {
        self.ca.as_ref().map(OneOrMany::items).unwrap_or_default()
    }

    /// The fields it sets, in words: `context "ferry-prod*", namespace "qa-*"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k} {v:?}"));
            }
        };
        add("context", &self.context);
        add("cluster", &self.cluster);
        add("server", &self.server);
        add("eksArn", &self.eks_arn);
        add("aksId", &self.aks_id);
        add("account", &self.account);
        add("namespace", &self.namespace);
        let ca = self.ca_list();
        if !ca.is_empty() {
            parts.push(format!("ca {}", ca.join(",")));
        }
        if !self.namespace_labels.is_empty() {
            let l: Vec<String> = self
                .namespace_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            parts.push(format!("namespaceLabels {}", l.join(",")));
        }
        parts.join(", ")
    }
}

/// Checks selector `i` of environment `env` for document `version`; returns it with its
/// CA fingerprints normalized.
fn check_selector(version: u32, env: &str, i: usize, s: &Selector) -> Result<Selector> {
    let at = format!("selector {i} of environment {env:?}");
    let mut s = s.clone();
    if version < 2 {
        for (field, set) in [
            ("ca", s.ca.is_some()),
            ("eksArn", s.eks_arn.is_some()),
            ("aksId", s.aks_id.is_some()),
        ] {
            if set {
                return Err(PolicyError::Invalid(format!(
                    "{at} sets `{field}:`, which needs `version: {DOCUMENT_VERSION}` at the top of the document"
                )));
            }
        }
        return Ok(s);
    }
    if let Some(ca) = &s.ca {
        let items = ca.items();
        if items.is_empty() {
            return Err(PolicyError::Invalid(format!(
                "{at}: `ca:` is an empty list: list the cluster's CA fingerprint(s)"
            )));
        }
        let mut norm = Vec::new();
        for c in &items {
            let n = normalize_fingerprint(c).ok_or_else(|| {
                PolicyError::Invalid(format!(
                    "{at}: `ca: {c}` is not a SHA-256 fingerprint (write sha256: and 64 hex digits, as `ferry policy identify` prints it)"
                ))
            })?;
            if !norm.contains(&n) {
                norm.push(n);
            }
        }
        s.ca = Some(OneOrMany::Many(norm));
    }
    let pinned = (s.server.is_some() && s.ca.is_some())
        || s.eks_arn.is_some()
        || s.aks_id.is_some()
        || s.account.is_some();
    if pinned {
        return Ok(s);
    }
    let why = if s.server.is_some() {
        "`server:` alone can be pointed elsewhere by a kubeconfig (tls-server-name, proxy-url, a hosts entry): add `ca:`, the fingerprint of the cluster's CA"
            .to_string()
    } else if s.ca.is_some() {
        "`ca:` needs `server:` too: the API server address and the CA together identify the cluster"
            .to_string()
    } else {
        format!(
            "it matches by {} only, which a kubeconfig can rename or any cluster can have: add `server` and `ca`, `eksArn`, `aksId` or `account`",
            s.describe()
        )
    };
    Err(PolicyError::Invalid(format!(
        "{at} does not pin its clusters: {why} (`ferry policy identify --context NAME` prints a cluster's)"
    )))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name == "*"
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(PolicyError::Invalid(format!(
            "{what} {name:?} is not a valid name: use letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

impl Policy {
    /// Parses and checks a YAML policy document.
    pub fn parse(text: &str) -> Result<Policy> {
        // The version is read first, so a newer document gets a version error rather
        // than complaints about fields this Ferry does not know.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<u32>,
        }
        let v: VersionOnly =
            serde_saphyr::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        match v.version {
            Some(1..=DOCUMENT_VERSION) => {}
            Some(found) => {
                return Err(PolicyError::UnsupportedVersion {
                    found,
                    supported: DOCUMENT_VERSION,
                });
            }
            None => {
                return Err(PolicyError::Invalid(format!(
                    "the document has no `version:` (write `version: {DOCUMENT_VERSION}` at the top)"
                )));
            }
        }
        let doc: PolicyDoc =
            serde_saphyr::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
        Policy::check(doc)
    }

    /// Checks a parsed document.
    pub fn check(doc: PolicyDoc) -> Result<Policy> {
        if doc.admins.is_empty() {
            return Err(PolicyError::Invalid(
                "`admins:` is empty: list at least one administrator key (from `ferry policy keygen`)"
                    .into(),
            ));
        }
        let mut admins = Vec::new();
        for a in &doc.admins {
            let key = parse_admin_key(a)?;
            let canonical = format!("ed25519:{}", hex::encode(key));
            if !admins.contains(&canonical) {
                admins.push(canonical);
            }
        }
        let mut environments: Vec<Environment> = Vec::new();
        for e in &doc.environments {
            check_name("environment", &e.name)?;
            if environments.iter().any(|x| x.name == e.name) {
                return Err(PolicyError::Invalid(format!(
                    "environment {:?} is defined twice",
                    e.name
                )));
            }
            if e.selectors.is_empty() {
                return Err(PolicyError::Invalid(format!(
                    "environment {:?} has an empty `match:` list, so nothing is in it",
                    e.name
                )));
            }
            let mut selectors = Vec::new();
            for (i, s) in e.selectors.iter().enumerate() {
                if *s == Selector::default() {
                    return Err(PolicyError::Invalid(format!(
                        "selector {} of environment {:?} sets no field, so it would match everything: set server and ca, eksArn, aksId, account, context, cluster, namespace or namespaceLabels",
                        i + 1,
                        e.name
                    )));
                }
                selectors.push(check_selector(doc.version, &e.name, i + 1, s)?);
            }
            environments.push(Environment {
                name: e.name.clone(),
                description: e.description.clone(),
                selectors,
            });
        }
        let env_set = |field: &str, i: usize, v: &Option<OneOrMany>| -> Result<EnvSet> {
            let Some(v) = v else {
                return Ok(EnvSet::Any);
            };
            let items = v.items();
            if items.iter().any(|s| s == "*") {
                return Ok(EnvSet::Any);
            }
            if items.is_empty() {
                return Err(PolicyError::Invalid(format!(
                    "rule {i}: `{field}:` is an empty list (leave it out, or write \"*\", for any environment)"
                )));
            }
            for n in &items {
                if !environments.iter().any(|e| &e.name == n) {
                    return Err(PolicyError::Invalid(format!(
                        "rule {i}: `{field}:` names environment {n:?}, which is not defined under `environments:`"
                    )));
                }
            }
            Ok(EnvSet::Named(items))
        };
        let mut rules = Vec::new();
        for (idx, r) in doc.rules.iter().enumerate() {
            let i = idx + 1;
            let (effect, actions) = match (&r.allow, &r.deny) {
                (Some(a), None) => (Effect::Allow, a),
                (None, Some(d)) => (Effect::Deny, d),
                _ => {
                    return Err(PolicyError::Invalid(format!(
                        "rule {i} must have exactly one of `allow:` and `deny:` (the actions)"
                    )));
                }
            };
            let names = actions.items();
            if names.is_empty() {
                return Err(PolicyError::Invalid(format!(
                    "rule {i} names no action (write \"*\" for every action)"
                )));
            }
            let actions = if names.iter().any(|n| n == "*") {
                Vec::new()
            } else {
                let mut v = Vec::new();
                for n in &names {
                    let a: Action = n
                        .parse()
                        .map_err(|e| PolicyError::Invalid(format!("rule {i}: {e}")))?;
                    if !v.contains(&a) {
                        v.push(a);
                    }
                }
                v
            };
            let subject_names = r.subjects.items();
            if subject_names.is_empty() {
                return Err(PolicyError::Invalid(format!(
                    "rule {i} has no subjects (write \"*\" for anyone)"
                )));
            }
            let mut subjects = Vec::new();
            for s in &subject_names {
                subjects.push(
                    s.parse::<Subject>()
                        .map_err(|e| PolicyError::Invalid(format!("rule {i}: {e}")))?,
                );
            }
            if effect == Effect::Deny && !r.scrub.is_empty() {
                return Err(PolicyError::Invalid(format!(
                    "rule {i} is a deny rule with `scrub:`: scrubbing applies to what is allowed, attach it to an allow rule"
                )));
            }
            for s in &r.scrub {
                if s.kind.trim().is_empty() {
                    return Err(PolicyError::Invalid(format!(
                        "rule {i}: a scrub rule has an empty `kind:`"
                    )));
                }
                if s.mode == ScrubMode::Placeholder
                    && !matches!(s.kind.as_str(), "Secret" | "ConfigMap")
                {
                    return Err(PolicyError::Invalid(format!(
                        "rule {i}: placeholders exist for Secrets and ConfigMaps only, not {:?}: use `mode: drop`",
                        s.kind
                    )));
                }
            }
            rules.push(Rule {
                effect,
                actions,
                subjects,
                from: env_set("from", i, &r.from)?,
                to: env_set("to", i, &r.to)?,
                scrub: r.scrub.clone(),
                reason: r.reason.clone(),
            });
        }
        Ok(Policy {
            version: doc.version,
            doc,
            admins,
            environments,
            rules,
        })
    }

    /// What the document lacks that a newer one would have, in sentences for the user
    /// (`ferry policy set` and `show` print them; empty for a version 2 document, whose
    /// selectors all pin their clusters).
    pub fn lacks(&self) -> Vec<String> {
        if self.version >= 2 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for e in &self.environments {
            let by_name: Vec<String> = e
                .selectors
                .iter()
                .filter(|s| s.names_cluster())
                .map(Selector::describe)
                .collect();
            if !by_name.is_empty() {
                out.push(format!(
                    "environment {:?} recognises its clusters by names and addresses a kubeconfig can change ({}): renaming a context, or pointing it elsewhere, moves a cluster into or out of {:?}",
                    e.name,
                    by_name.join("; "),
                    e.name
                ));
            }
            for (i, s) in e.selectors.iter().enumerate() {
                if s.is_unscoped() {
                    out.push(format!(
                        "selector {} of environment {:?} ({}) names no cluster: it applies on any cluster that no other environment claims as a whole (never inside another environment's cluster)",
                        i + 1,
                        e.name,
                        s.describe()
                    ));
                }
            }
        }
        if !out.is_empty() {
            out.push(format!(
                "this is a version 1 document: write `version: {DOCUMENT_VERSION}` and pin every selector with `server` and `ca`, `eksArn` or `aksId` (`ferry policy identify` prints them for each cluster)"
            ));
        }
        out
    }

    pub fn environment(&self, name: &str) -> Result<&Environment> {
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PolicyError::NoSuchEnvironment(name.to_string()))
    }
}

/// Glob matching: `*` matches any run of characters (also none), `?` one character.
pub use ferry_k8s::scope::glob;

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "ed25519:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn globs() {
        assert!(glob("qa-*", "qa-1"));
        assert!(glob("qa*", "qa"));
        assert!(!glob("qa-*", "qa"));
        assert!(glob("*", ""));
        assert!(glob("p?od", "prod"));
        assert!(!glob("prod", "production"));
        assert!(glob("*-prod-*", "eu-prod-1"));
    }

    #[test]
    fn a_document_parses_with_single_names_and_lists() {
        let p = Policy::parse(&format!(
            "version: 1\nadmins: [\"{ADMIN}\"]\nenvironments:\n  - name: prod\n    match:\n      - namespace: prod*\n  - name: qa\n    match:\n      - context: ferry-qa\n        namespaceLabels: {{tier: qa}}\nrules:\n  - allow: clone\n    subjects: group:developers\n    from: prod\n    to: [qa]\n    scrub:\n      - kind: Secret\n        mode: placeholder\n  - deny: \"*\"\n    subjects: [\"*\"]\n    to: prod\n"
        ))
        .unwrap();
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[0].actions, vec![Action::Clone]);
        assert_eq!(p.rules[0].from, EnvSet::Named(vec!["prod".into()]));
        assert_eq!(p.rules[1].actions, Vec::<Action>::new());
        assert_eq!(p.rules[1].from, EnvSet::Any);
        assert_eq!(
            p.rules[0].to_string(),
            "allow group:developers clone from prod to qa (scrub: Secrets replaced by placeholders)"
        );
        assert_eq!(
            p.environments[1].selectors[0].namespace_labels["tier"],
            "qa"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let base = format!("version: 1\nadmins: [\"{ADMIN}\"]\n");
        let cases = [
            (
                "rules:\n  - allow: clone\n    subjects: '*'\n    to: nowhere\n",
                "nowhere",
            ),
            (
                "rules:\n  - allow: fly\n    subjects: '*'\n",
                "not an action",
            ),
            (
                "rules:\n  - allow: clone\n    deny: clone\n    subjects: '*'\n",
                "exactly one",
            ),
            (
                "rules:\n  - allow: clone\n    subjects: bob\n",
                "not a subject",
            ),
            (
                "rules:\n  - deny: clone\n    subjects: '*'\n    scrub: [{kind: Secret, mode: drop}]\n",
                "deny rule",
            ),
            (
                "rules:\n  - allow: clone\n    subjects: '*'\n    scrub: [{kind: Pod, mode: placeholder}]\n",
                "placeholders",
            ),
            (
                "environments:\n  - name: a\n    match: [{}]\n",
                "sets no field",
            ),
            (
                "environments:\n  - name: a\n    match: [{namespace: x}]\n  - name: a\n    match: [{namespace: y}]\n",
                "twice",
            ),
            (
                "rules:\n  - allow: clone\n    subjects: '*'\n    colour: red\n",
                "colour",
            ),
        ];
        for (tail, expected) in cases {
            let e = Policy::parse(&format!("{base}{tail}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{tail}: {e}");
        }
        let e = Policy::parse("version: 3\nadmins: []\n").unwrap_err();
        assert!(
            matches!(e, PolicyError::UnsupportedVersion { found: 3, .. }),
            "{e}"
        );
        let e = Policy::parse("version: 1\nadmins: [\"ed25519:12\"]\n").unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let e = Policy::parse("version: 1\nadmins: []\n").unwrap_err();
        assert!(e.to_string().contains("at least one"), "{e}");
        assert!(Policy::parse("- not a map").is_err());
        assert!(Policy::parse(": : :").is_err());
    }

    const FP: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn version_2_selectors_must_pin_their_clusters() {
        let base =
            format!("version: 2\nadmins: [\"{ADMIN}\"]\nenvironments:\n  - name: e\n    match:\n");
        let ok = [
            format!("      - {{server: \"https://a:6443\", ca: \"{FP}\"}}\n"),
            format!("      - {{server: \"https://a:6443\", ca: [\"{}\"], namespace: qa-*, context: x}}\n", FP.to_uppercase().replace("SHA256:", "")),
            "      - {eksArn: \"arn:aws:eks:eu-west-1:1:cluster/p\"}\n".to_string(),
            "      - {aksId: \"/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/p\"}\n".to_string(),
            "      - {account: \"123456789012\", namespace: \"x\"}\n".to_string(),
        ];
        for tail in &ok {
            let p =
                Policy::parse(&format!("{base}{tail}")).unwrap_or_else(|e| panic!("{tail}: {e}"));
            assert_eq!(p.version, 2);
            assert!(p.lacks().is_empty());
        }
        // Fingerprints are normalized when checked.
        let p = Policy::parse(&format!("{base}{}", ok[1])).unwrap();
        assert_eq!(
            p.environments[0].selectors[0].ca_list(),
            vec![FP.to_string()]
        );
        let bad = [
            ("      - {context: \"ferry-prod*\"}\n", "matches by context"),
            ("      - {namespace: \"qa-*\"}\n", "matches by namespace"),
            ("      - {server: \"https://a:6443\"}\n", "add `ca:`"),
            (&*format!("      - {{ca: \"{FP}\"}}\n"), "needs `server:`"),
            (
                "      - {server: \"https://a\", ca: \"md5:12\"}\n",
                "not a SHA-256",
            ),
            ("      - {server: \"https://a\", ca: []}\n", "empty list"),
        ];
        for (tail, expected) in bad {
            let e = Policy::parse(&format!("{base}{tail}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{tail}: {e}");
            assert!(e.contains("does not pin") || e.contains("ca:"), "{e}");
        }
    }

    #[test]
    fn version_1_documents_parse_and_say_what_they_lack() {
        let doc = format!(
            "version: 1\nadmins: [\"{ADMIN}\"]\nenvironments:\n  - name: prod\n    match: [{{context: \"ferry-prod*\"}}]\n  - name: qa\n    match: [{{context: \"ferry-qa*\"}}, {{namespace: \"qa-*\"}}]\n"
        );
        let p = Policy::parse(&doc).unwrap();
        assert_eq!(p.version, 1);
        let lacks = p.lacks().join("\n");
        assert!(
            lacks.contains("environment \"prod\" recognises its clusters by names"),
            "{lacks}"
        );
        assert!(
            lacks
                .contains("selector 2 of environment \"qa\" (namespace \"qa-*\") names no cluster"),
            "{lacks}"
        );
        assert!(lacks.contains("write `version: 2`"), "{lacks}");
        // Identity fields need version 2.
        let e = Policy::parse(&format!(
            "version: 1\nadmins: [\"{ADMIN}\"]\nenvironments:\n  - name: p\n    match: [{{server: a, ca: \"{FP}\"}}]\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("needs `version: 2`"), "{e}");
    }

    #[test]
    fn fingerprints_are_read_in_the_usual_spellings() {
        let hexs = &FP[7..];
        assert_eq!(normalize_fingerprint(hexs).as_deref(), Some(FP));
        let colons: Vec<String> = hexs
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect();
        assert_eq!(
            normalize_fingerprint(&colons.join(":")).as_deref(),
            Some(FP)
        );
        assert_eq!(normalize_fingerprint("sha256:12"), None);
    }
}

//! The policy document: a YAML file administrators write (schema in docs/FORMAT.md,
//! "Policies and audit"), parsed into a checked [`Policy`].
//!
//! ```yaml
//! version: 1
//! admins: ["ed25519:3b6a27bc..."]
//! environments:
//!   - name: prod
//!     match:
//!       - context: "ferry-prod*"
//!       - namespace: "prod-*"
//!   - name: qa
//!     match:
//!       - namespace: "qa*"
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

/// The document version this Ferry reads and writes.
pub const DOCUMENT_VERSION: u32 = 1;

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
    /// The kubeconfig context name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The cluster's name in Ferry (`ferry clusters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The API server URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The cloud account (for EKS, the AWS account ID of the cluster's ARN).
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
    fn items(&self) -> Vec<String> {
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
            Some(DOCUMENT_VERSION) => {}
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
            for (i, s) in e.selectors.iter().enumerate() {
                if *s == Selector::default() {
                    return Err(PolicyError::Invalid(format!(
                        "selector {} of environment {:?} sets no field, so it would match everything: set context, cluster, server, account, namespace or namespaceLabels",
                        i + 1,
                        e.name
                    )));
                }
            }
            environments.push(Environment {
                name: e.name.clone(),
                description: e.description.clone(),
                selectors: e.selectors.clone(),
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
            doc,
            admins,
            environments,
            rules,
        })
    }

    pub fn environment(&self, name: &str) -> Result<&Environment> {
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PolicyError::NoSuchEnvironment(name.to_string()))
    }
}

/// Glob matching: `*` matches any run of characters (also none), `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

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
        let e = Policy::parse("version: 2\nadmins: []\n").unwrap_err();
        assert!(
            matches!(e, PolicyError::UnsupportedVersion { found: 2, .. }),
            "{e}"
        );
        let e = Policy::parse("version: 1\nadmins: [\"ed25519:12\"]\n").unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let e = Policy::parse("version: 1\nadmins: []\n").unwrap_err();
        assert!(e.to_string().contains("at least one"), "{e}");
        assert!(Policy::parse("- not a map").is_err());
        assert!(Policy::parse(": : :").is_err());
    }
}

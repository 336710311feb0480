//! Deciding a request: which rules match, which one wins, and who could do it instead.
//!
//! **Where a location is.** A location is in an environment when one of its selectors
//! matches it (every field the selector sets matches). Version 2 documents match
//! clusters on their identity (`server` with `ca`, `eksArn`, `aksId`, `account` of the
//! ARN EKS reports: see [`ferry_providers::kubeconfig::ClusterIdentity`]), which no
//! kubeconfig edit can fake. Version 1 documents match on names as before, with one
//! safety rule: a selector that sets a namespace but names no cluster applies only on
//! clusters that no cluster-wide selector (one without a namespace) of *another*
//! environment matches, so `{namespace: "qa-*"}` never makes a namespace of the prod
//! cluster part of qa.
//!
//! **Which rules match.** A rule matches a request when it names the action (or `*`),
//! one of its subjects matches the identity on **every** cluster involved (a user by
//! name, a group by membership, `*` anyone), and its `from` and `to` contain the
//! request's locations (an environment set names environments; `*` matches any
//! location, also none). No matching allow rule: denied.
//!
//! **A deny is never outranked by a broader allow.** When allow and deny rules both
//! match, the request is allowed only by an allow rule that lies *inside* every matching
//! deny rule and is narrower than each in at least one respect:
//! - subject: the allow's matching subject is the deny's, or the deny's is `*`, or the
//!   allow names the user and the deny a group the user is in;
//! - actions: the allow's actions are among the deny's (a deny for `*` holds every one);
//! - `from` and `to`: each environment the allow names lies inside one the deny names
//!   (the same environment, or one whose every selector sets all the fields of one of
//!   the other's selectors with the same values, and maybe more); a deny for `*` holds
//!   every environment, an allow for `*` lies inside no named one.
//!
//! A tie (the same in every respect) goes to the deny. Otherwise the most specific
//! matching deny decides, and its reason says which allow could not outrank it and why.
//!
//! **Which rule is reported.** Among the rules of the winning effect, the most specific:
//! (1) the subject that matched, user > group > anyone; (2) how many of `from` and `to`
//! name environments; (3) a rule naming the action over `*`; then the earlier rule. The
//! allow that decides brings its scrub rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::document::{
    Action, Effect, EnvSet, Environment, Policy, Rule, ScrubRule, Selector, Subject, glob,
};
use ferry_providers::kubeconfig::ClusterIdentity;

/// Where data comes from or goes to: a cluster and, usually, a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The cluster's name in Ferry.
    pub cluster: String,
    pub context: String,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_labels: BTreeMap<String, String>,
    /// Who the cluster is (what version 2 selectors match); default: unknown.
    #[serde(default)]
    pub identity: ClusterIdentity,
}

impl Location {
    /// The cloud account of an EKS cluster, from an ARN in the context or cluster name
    /// (`arn:aws:eks:REGION:ACCOUNT:cluster/NAME`).
    pub fn account_from_arn(names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| {
            let rest = n.strip_prefix("arn:")?;
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            match parts.as_slice() {
                [_, "eks", _, account, res] if res.starts_with("cluster/") => {
                    Some((*account).to_string())
                }
                _ => None,
            }
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}", self.cluster),
            None => f.write_str(&self.cluster),
        }
    }
}

/// Who the user is on one cluster, as its `SelfSubjectReview` says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster: String,
    pub username: String,
    pub groups: Vec<String>,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} (groups: {})",
            self.username,
            self.cluster,
            if self.groups.is_empty() {
                "none".to_string()
            } else {
                self.groups.join(", ")
            }
        )
    }
}

/// What someone wants to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub action: Action,
    pub from: Option<Location>,
    pub to: Option<Location>,
    /// The identity on each cluster involved.
    pub identities: Vec<Identity>,
}

/// The rule that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidingRule {
    /// 1-based, as the rules are listed in the document.
    pub index: usize,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// None: no rule matched (denied by default), or there is no policy.
    pub rule: Option<DecidingRule>,
    /// In words: what was decided and why.
    pub reason: String,
    /// What the target must not receive as is (from the deciding allow rule).
    pub scrub: Vec<ScrubRule>,
    /// For a denial: the subjects whose rules would allow the request.
    pub could: Vec<String>,
}

impl Decision {
    /// The decision when a repository has no policy.
    pub fn no_policy(action: Action) -> Decision {
        Decision {
            allowed: true,
            rule: None,
            reason: format!(
                "{action} is allowed: the repository has no policy (an administrator can set one with `ferry policy set`)"
            ),
            scrub: Vec::new(),
            could: Vec::new(),
        }
    }
}

fn subject_matches(s: &Subject, ids: &[Identity]) -> bool {
    match s {
        Subject::Anyone => true,
        Subject::User(u) => !ids.is_empty() && ids.iter().all(|i| &i.username == u),
        Subject::Group(g) => !ids.is_empty() && ids.iter().all(|i| i.groups.contains(g)),
    }
}

/// (subject rank, named environments, named action) of a matching rule.
type Specificity = (u8, u8, u8);

/// A rule that matches a request.
#[derive(Debug, Clone)]
struct Match {
    /// 0-based.
    index: usize,
    spec: Specificity,
    /// Its most specific subject that matched.
    subject: Subject,
}

/// How a request was decided (rule indexes 0-based).
#[derive(Debug, Clone)]
enum Verdict {
    Allowed {
        rule: usize,
        others: Vec<usize>,
    },
    Denied {
        rule: Option<usize>,
        others: Vec<usize>,
        /// Allow rules that matched but could not outrank a deny: (allow, deny, why).
        blocked: Vec<(usize, usize, String)>,
    },
}

impl Verdict {
    fn allowed(&self) -> bool {
        matches!(self, Verdict::Allowed { .. })
    }
}

/// The most specific of `ms`, the earlier one on a tie.
fn most_specific<'a>(ms: &[&'a Match]) -> Option<&'a Match> {
    let mut best: Option<&Match> = None;
    for m in ms {
        if best.is_none_or(|b| m.spec > b.spec) {
            best = Some(m);
        }
    }
    best
}

/// Whether subject `a` lies inside `d` for a requester both match: Some(strictly).
fn subject_inside(a: &Subject, d: &Subject) -> Option<bool> {
    match (a, d) {
        (a, d) if a == d => Some(false),
        (_, Subject::Anyone) => Some(true),
        (Subject::User(_), Subject::Group(_)) => Some(true),
        _ => None,
    }
}

/// Whether actions `a` lie inside `d` (empty: every action): Some(strictly).
fn actions_inside(a: &[Action], d: &[Action]) -> Option<bool> {
    match (a.is_empty(), d.is_empty()) {
        (_, true) => Some(!a.is_empty()),
        (true, false) => None,
        (false, false) => a
            .iter()
            .all(|x| d.contains(x))
            .then(|| d.iter().any(|x| !a.contains(x))),
    }
}

fn actions_text(a: &[Action]) -> String {
    if a.is_empty() {
        "*".into()
    } else {
        a.iter().map(|x| x.name()).collect::<Vec<_>>().join(", ")
    }
}

/// Whether every location `s1` matches is one `s2` matches, judged from the fields:
/// `s2`'s fields are all set in `s1` with the same values (labels: a subset). Selectors
/// without a cluster (version 1) are scoped by the other environments, so they are
/// compared with nothing.
fn selector_inside(s1: &Selector, s2: &Selector) -> bool {
    if s1.is_unscoped() || s2.is_unscoped() {
        return false;
    }
    let same = |a: &Option<String>, b: &Option<String>| b.is_none() || a == b;
    same(&s1.context, &s2.context)
        && same(&s1.cluster, &s2.cluster)
        && same(&s1.server, &s2.server)
        && same(&s1.account, &s2.account)
        && same(&s1.eks_arn, &s2.eks_arn)
        && same(&s1.aks_id, &s2.aks_id)
        && same(&s1.namespace, &s2.namespace)
        && (s2.ca.is_none()
            || (s1.ca.is_some() && s1.ca_list().iter().all(|c| s2.ca_list().contains(c))))
        && s2
            .namespace_labels
            .iter()
            .all(|(k, v)| s1.namespace_labels.get(k) == Some(v))
}

impl Policy {
    /// Whether selector `s` matches `loc` (the version 1 scoping aside, see
    /// [`Policy::in_environment`]).
    fn selector_matches(&self, s: &Selector, loc: &Location) -> bool {
        let v2 = self.version >= 2;
        let id = &loc.identity;
        let field = |pat: &Option<String>, value: &str| pat.as_ref().is_none_or(|p| glob(p, value));
        let account = if v2 {
            id.eks_arn
                .as_deref()
                .and_then(|a| Location::account_from_arn(&[a]))
        } else {
            loc.account.clone()
        };
        field(&s.context, &loc.context)
            && field(&s.cluster, &loc.cluster)
            && field(&s.server, if v2 { &id.server } else { &loc.server })
            && s.account
                .as_ref()
                .is_none_or(|p| account.as_deref().is_some_and(|a| glob(p, a)))
            && (s.ca.is_none() || {
                let listed = s.ca_list();
                !id.ca.is_empty() && id.ca.iter().all(|c| listed.contains(c))
            })
            && s.eks_arn
                .as_ref()
                .is_none_or(|p| id.eks_arn.as_deref().is_some_and(|a| glob(p, a)))
            && s.aks_id.as_ref().is_none_or(|p| {
                id.aks_id
                    .as_deref()
                    .is_some_and(|a| glob(&p.to_lowercase(), &a.to_lowercase()))
            })
            && s.namespace
                .as_ref()
                .is_none_or(|p| loc.namespace.as_deref().is_some_and(|n| glob(p, n)))
            && s.namespace_labels
                .iter()
                .all(|(k, v)| loc.namespace_labels.get(k) == Some(v))
    }

    /// Whether `loc` is in `env`. A selector that sets a namespace but names no cluster
    /// (version 1) applies only where no cluster-wide selector of another environment
    /// matches the cluster.
    pub fn in_environment(&self, env: &Environment, loc: &Location) -> bool {
        env.selectors.iter().any(|s| {
            self.selector_matches(s, loc)
                && (!s.is_unscoped() || !self.claimed_elsewhere(&env.name, loc))
        })
    }

    /// Whether an environment other than `name` claims `loc`'s whole cluster.
    fn claimed_elsewhere(&self, name: &str, loc: &Location) -> bool {
        self.environments
            .iter()
            .filter(|e| e.name != name)
            .any(|e| {
                e.selectors
                    .iter()
                    .any(|s| s.is_cluster_wide() && self.selector_matches(s, loc))
            })
    }

    /// The environments `loc` is in.
    pub fn environments_of(&self, loc: &Location) -> Vec<&str> {
        self.environments
            .iter()
            .filter(|e| self.in_environment(e, loc))
            .map(|e| e.name.as_str())
            .collect()
    }

    fn env_matches(&self, set: &EnvSet, loc: Option<&Location>) -> bool {
        match set {
            EnvSet::Any => true,
            EnvSet::Named(names) => loc.is_some_and(|l| {
                self.environments
                    .iter()
                    .any(|e| names.contains(&e.name) && self.in_environment(e, l))
            }),
        }
    }

    /// Whether environment `a` lies inside environment `d`.
    fn environment_inside(&self, a: &str, d: &str) -> bool {
        if a == d {
            return true;
        }
        let (Ok(ea), Ok(ed)) = (self.environment(a), self.environment(d)) else {
            return false;
        };
        ea.selectors
            .iter()
            .all(|s1| ed.selectors.iter().any(|s2| selector_inside(s1, s2)))
    }

    /// Whether environment set `a` lies inside `d`: Some(strictly).
    fn set_inside(&self, a: &EnvSet, d: &EnvSet) -> Option<bool> {
        match (a, d) {
            (EnvSet::Any, EnvSet::Any) => Some(false),
            (EnvSet::Named(_), EnvSet::Any) => Some(true),
            (EnvSet::Any, EnvSet::Named(_)) => None,
            (EnvSet::Named(an), EnvSet::Named(dn)) => {
                let inside = |xs: &[String], ys: &[String]| {
                    xs.iter()
                        .all(|x| ys.iter().any(|y| self.environment_inside(x, y)))
                };
                inside(an, dn).then(|| !inside(dn, an))
            }
        }
    }

    /// Ok when allow `a` lies inside deny `d` and is narrower in some respect; else why
    /// not, in words.
    fn inside(&self, a: &Match, d: &Match) -> Result<(), String> {
        let (ra, rd) = (&self.rules[a.index], &self.rules[d.index]);
        let mut strict = false;
        match subject_inside(&a.subject, &d.subject) {
            Some(s) => strict |= s,
            None => {
                return Err(format!(
                    "its subject {} is not inside the deny's {}",
                    a.subject, d.subject
                ));
            }
        }
        match actions_inside(&ra.actions, &rd.actions) {
            Some(s) => strict |= s,
            None => {
                return Err(format!(
                    "its actions ({}) are not among the deny's ({})",
                    actions_text(&ra.actions),
                    actions_text(&rd.actions)
                ));
            }
        }
        for (field, x, y) in [("from", &ra.from, &rd.from), ("to", &ra.to, &rd.to)] {
            match self.set_inside(x, y) {
                Some(s) => strict |= s,
                None => {
                    return Err(format!(
                        "its `{field}` ({x}) is not inside the deny's `{field}` ({y})"
                    ));
                }
            }
        }
        if strict {
            Ok(())
        } else {
            Err("it is no narrower than the deny in any respect (a tie goes to the deny)".into())
        }
    }

    /// How `rule` matches `req`, or None when it does not.
    fn rule_match(&self, index: usize, rule: &Rule, req: &Request) -> Option<Match> {
        if !rule.actions.is_empty() && !rule.actions.contains(&req.action) {
            return None;
        }
        if !self.env_matches(&rule.from, req.from.as_ref())
            || !self.env_matches(&rule.to, req.to.as_ref())
        {
            return None;
        }
        let subject = rule
            .subjects
            .iter()
            .filter(|s| subject_matches(s, &req.identities))
            .max_by_key(|s| s.rank())?
            .clone();
        let named = u8::from(matches!(rule.from, EnvSet::Named(_)))
            + u8::from(matches!(rule.to, EnvSet::Named(_)));
        Some(Match {
            index,
            spec: (subject.rank(), named, u8::from(!rule.actions.is_empty())),
            subject,
        })
    }

    /// The one decision procedure (see the module documentation).
    fn verdict(&self, req: &Request) -> Verdict {
        let matching: Vec<Match> = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| self.rule_match(i, r, req))
            .collect();
        let of = |e: Effect| -> Vec<&Match> {
            matching
                .iter()
                .filter(|m| self.rules[m.index].effect == e)
                .collect()
        };
        let (allows, denies) = (of(Effect::Allow), of(Effect::Deny));
        let others = |winner: usize| -> Vec<usize> {
            matching
                .iter()
                .map(|m| m.index)
                .filter(|i| *i != winner)
                .collect()
        };
        let exceptions: Vec<&Match> = allows
            .iter()
            .copied()
            .filter(|a| denies.iter().all(|d| self.inside(a, d).is_ok()))
            .collect();
        if let Some(a) = most_specific(&exceptions) {
            return Verdict::Allowed {
                rule: a.index,
                others: others(a.index),
            };
        }
        let Some(d) = most_specific(&denies) else {
            return Verdict::Denied {
                rule: None,
                others: Vec::new(),
                blocked: Vec::new(),
            };
        };
        let blocked = allows
            .iter()
            .filter_map(|a| {
                denies
                    .iter()
                    .find_map(|d| self.inside(a, d).err().map(|why| (a.index, d.index, why)))
            })
            .collect();
        Verdict::Denied {
            rule: Some(d.index),
            others: others(d.index),
            blocked,
        }
    }

    /// Decides `req`.
    pub fn decide(&self, req: &Request) -> Decision {
        let who = match req.identities.as_slice() {
            [] => "nobody known".to_string(),
            ids => ids
                .iter()
                .map(Identity::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        };
        let route = self.describe_route(req);
        let list = |v: &[usize]| {
            v.iter()
                .map(|i| (i + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (i, allowed, others, blocked) = match self.verdict(req) {
            Verdict::Allowed { rule, others } => (rule, true, others, Vec::new()),
            Verdict::Denied {
                rule: Some(rule),
                others,
                blocked,
            } => (rule, false, others, blocked),
            Verdict::Denied { rule: None, .. } => {
                return Decision {
                    allowed: false,
                    rule: None,
                    reason: format!(
                        "{} is denied {route} for {who}: no rule allows it, and once a policy exists what no rule allows is denied",
                        req.action
                    ),
                    scrub: Vec::new(),
                    could: self.who_could(req),
                };
            }
        };
        let rule = &self.rules[i];
        let deciding = DecidingRule {
            index: i + 1,
            text: rule.to_string(),
            reason: rule.reason.clone(),
        };
        let mut reason = format!(
            "{} {} {route} for {who}: rule {} ({})",
            req.action,
            if allowed { "is allowed" } else { "is denied" },
            i + 1,
            deciding.text
        );
        if let Some(r) = &rule.reason {
            reason.push_str(&format!(": {r}"));
        }
        for (a, d, why) in &blocked {
            reason.push_str(&format!(
                "; rule {} also matches but cannot outrank deny rule {}: {why} (an allow outranks a deny only from inside it: subject, actions, from and to each the same or narrower)",
                a + 1,
                d + 1
            ));
        }
        let rest: Vec<usize> = others
            .into_iter()
            .filter(|o| !blocked.iter().any(|(a, _, _)| a == o))
            .collect();
        if !rest.is_empty() {
            reason.push_str(&format!(
                "; it is more specific than the other matching rule(s) {}",
                list(&rest)
            ));
        }
        Decision {
            allowed,
            rule: Some(deciding),
            reason,
            scrub: if allowed {
                rule.scrub.clone()
            } else {
                Vec::new()
            },
            could: if allowed {
                Vec::new()
            } else {
                self.who_could(req)
            },
        }
    }

    fn describe_route(&self, req: &Request) -> String {
        let place = |l: &Location| {
            let envs = self.environments_of(l);
            if envs.is_empty() {
                format!("{l} (in no environment)")
            } else {
                format!("{l} ({})", envs.join(", "))
            }
        };
        match (&req.from, &req.to) {
            (Some(f), Some(t)) => format!("from {} to {}", place(f), place(t)),
            (Some(f), None) => format!("from {}", place(f)),
            (None, Some(t)) => format!("to {}", place(t)),
            (None, None) => String::new(),
        }
    }

    /// The subjects named in the rules who would be allowed `req` (with the same
    /// locations), each tried as a stand-in identity on every cluster involved.
    pub fn who_could(&self, req: &Request) -> Vec<String> {
        let clusters: Vec<String> = if req.identities.is_empty() {
            vec![String::new()]
        } else {
            req.identities.iter().map(|i| i.cluster.clone()).collect()
        };
        let mut subjects: Vec<&Subject> = self.rules.iter().flat_map(|r| &r.subjects).collect();
        subjects.sort();
        subjects.dedup();
        // A user name no rule names stands in for "someone not named" (groups only).
        let nobody = "\u{0}nobody".to_string();
        let mut out = Vec::new();
        for s in subjects {
            let (username, groups) = match s {
                Subject::User(u) => (u.clone(), Vec::new()),
                Subject::Group(g) => (nobody.clone(), vec![g.clone()]),
                Subject::Anyone => (nobody.clone(), Vec::new()),
            };
            let probe = Request {
                identities: clusters
                    .iter()
                    .map(|c| Identity {
                        cluster: c.clone(),
                        username: username.clone(),
                        groups: groups.clone(),
                    })
                    .collect(),
                ..req.clone()
            };
            if self.verdict(&probe).allowed() {
                out.push(s.to_string());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
version: 1
admins: ["ed25519:0000000000000000000000000000000000000000000000000000000000000001"]
environments:
  - name: prod
    match:
      - namespace: "prod*"
      - context: "eks-prod"
  - name: qa
    match:
      - namespace: "qa*"
  - name: dev
    match:
      - namespaceLabels: {tier: dev}
rules:
  - allow: [clone, migrate]
    subjects: ["group:developers"]
    from: prod
    to: [qa, dev]
    scrub:
      - kind: Secret
        mode: placeholder
    reason: developers refresh test data from production
  - deny: "*"
    subjects: "*"
    to: prod
    reason: production changes go through SRE
  - allow: restore
    subjects: "group:sre"
    to: prod
  - deny: clone
    subjects: "user:mallory"
    from: prod
  - allow: "*"
    subjects: "user:root"
  - allow: backup
    subjects: "*"
"#;

    fn loc(ns: &str) -> Location {
        Location {
            cluster: "c1".into(),
            context: "c1".into(),
            server: "https://c1".into(),
            namespace: Some(ns.into()),
            ..Location::default()
        }
    }

    fn id(user: &str, groups: &[&str]) -> Vec<Identity> {
        ["c1", "c2"]
            .iter()
            .map(|c| Identity {
                cluster: (*c).into(),
                username: user.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            })
            .collect()
    }

    fn req(action: Action, from: Option<&str>, to: Option<&str>, ids: Vec<Identity>) -> Request {
        Request {
            action,
            from: from.map(loc),
            to: to.map(loc),
            identities: ids,
        }
    }

    #[test]
    fn a_developer_clones_prod_to_qa_but_not_back() {
        let p = Policy::parse(DOC).unwrap();
        let d = p.decide(&req(
            Action::Clone,
            Some("prod-shop"),
            Some("qa-shop"),
            id("dev", &["developers"]),
        ));
        assert!(d.allowed, "{}", d.reason);
        assert_eq!(d.rule.as_ref().unwrap().index, 1);
        assert_eq!(d.scrub.len(), 1);
        assert!(
            d.reason.contains("developers refresh test data"),
            "{}",
            d.reason
        );

        // Back: rule 2 (deny anyone into prod) decides, and says who could.
        let d = p.decide(&req(
            Action::Clone,
            Some("qa-shop"),
            Some("prod-shop"),
            id("dev", &["developers"]),
        ));
        assert!(!d.allowed);
        assert_eq!(d.rule.as_ref().unwrap().index, 2);
        assert!(
            d.reason.contains("production changes go through SRE"),
            "{}",
            d.reason
        );
        // user:root's allow for everything is broader than the deny in `to`: it does
        // not outrank it, so nobody the policy names may do this.
        assert!(d.could.is_empty(), "{:?}", d.could);
        assert!(d.scrub.is_empty());
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let p = Policy::parse(DOC).unwrap();
        // group:sre (restore, to prod) beats anyone (deny *, to prod).
        let d = p.decide(&req(
            Action::Restore,
            Some("qa-x"),
            Some("prod-x"),
            id("sam", &["sre"]),
        ));
        assert!(d.allowed, "{}", d.reason);
        assert_eq!(d.rule.unwrap().index, 3);
        // A user rule beats the group rule, although the group rule names both environments.
        let d = p.decide(&req(
            Action::Clone,
            Some("prod-x"),
            Some("qa-x"),
            id("mallory", &["developers"]),
        ));
        assert!(!d.allowed);
        assert_eq!(d.rule.as_ref().unwrap().index, 4);
        assert!(
            d.reason.contains(
                "rule 1 also matches but cannot outrank deny rule 4: its subject group:developers is not inside the deny's user:mallory"
            ),
            "{}",
            d.reason
        );
        // user:root's allow for everything is not inside the deny for anyone into prod
        // (its `to` is broader): the deny holds.
        let d = p.decide(&req(Action::Restore, None, Some("prod-x"), id("root", &[])));
        assert!(!d.allowed, "{}", d.reason);
        assert_eq!(d.rule.as_ref().unwrap().index, 2);
        assert!(
            d.reason.contains("rule 5 also matches but cannot outrank deny rule 2: its `to` (*) is not inside the deny's `to` (prod)"),
            "{}",
            d.reason
        );
        // Elsewhere nothing denies: root's rule decides.
        let d = p.decide(&req(Action::Restore, None, Some("qa-x"), id("root", &[])));
        assert!(d.allowed);
        assert_eq!(d.rule.unwrap().index, 5);
        // Anyone may back up, except into... backups have no target: rule 6.
        let d = p.decide(&req(Action::Backup, Some("prod-x"), None, id("eve", &[])));
        assert!(d.allowed);
        assert_eq!(d.rule.unwrap().index, 6);
    }

    #[test]
    fn deny_wins_a_tie_and_nothing_matching_is_denied() {
        let doc = r#"
version: 1
admins: ["ed25519:0000000000000000000000000000000000000000000000000000000000000001"]
environments:
  - name: qa
    match: [{namespace: "qa*"}]
rules:
  - allow: clone
    subjects: "group:a"
    to: qa
  - deny: clone
    subjects: "group:b"
    to: qa
"#;
        let p = Policy::parse(doc).unwrap();
        let d = p.decide(&req(
            Action::Clone,
            Some("x"),
            Some("qa1"),
            id("u", &["a", "b"]),
        ));
        assert!(!d.allowed);
        assert_eq!(d.rule.unwrap().index, 2);
        assert_eq!(d.could, vec!["group:a"]);
        // Outside every environment: no rule, denied by default.
        let d = p.decide(&req(
            Action::Clone,
            Some("x"),
            Some("staging"),
            id("u", &["a"]),
        ));
        assert!(!d.allowed);
        assert!(d.rule.is_none());
        assert!(d.reason.contains("no rule allows it"), "{}", d.reason);
        assert!(d.could.is_empty());
    }

    #[test]
    fn a_subject_must_match_on_every_cluster() {
        let p = Policy::parse(DOC).unwrap();
        let mut ids = id("dev", &["developers"]);
        ids[1].groups.clear();
        let d = p.decide(&req(Action::Clone, Some("prod-shop"), Some("qa-shop"), ids));
        assert!(!d.allowed, "{}", d.reason);
        assert_eq!(d.could, vec!["user:root", "group:developers"]);
    }

    /// The README's example before issue 14: qa is `ferry-qa*` contexts *and* any
    /// `qa-*` namespace, prod is `ferry-prod*` contexts.
    const OLD_README: &str = r#"
version: 1
admins: ["ed25519:0000000000000000000000000000000000000000000000000000000000000001"]
environments:
  - name: prod
    match: [{context: "ferry-prod*"}]
  - name: qa
    match: [{context: "ferry-qa*"}, {namespace: "qa-*"}]
rules:
  - allow: [clone, migrate]
    subjects: ["group:developers"]
    from: prod
    to: qa
  - deny: "*"
    subjects: "*"
    to: prod
    reason: production changes go through SRE
  - allow: restore
    subjects: "group:sre"
    to: prod
"#;

    fn at(context: &str, ns: &str) -> Location {
        Location {
            cluster: context.into(),
            context: context.into(),
            server: format!("https://{context}"),
            namespace: Some(ns.into()),
            ..Location::default()
        }
    }

    fn dev() -> Vec<Identity> {
        ["ferry-prod", "ferry-qa"]
            .iter()
            .map(|c| Identity {
                cluster: (*c).into(),
                username: "dev".into(),
                groups: vec!["developers".into()],
            })
            .collect()
    }

    #[test]
    fn a_namespace_matcher_never_reaches_into_another_environments_cluster() {
        let p = Policy::parse(OLD_README).unwrap();
        // A qa-* namespace on the prod cluster is prod only; on a cluster no environment
        // claims it is qa; on the qa cluster it is qa.
        assert_eq!(
            p.environments_of(&at("ferry-prod", "qa-copy")),
            vec!["prod"]
        );
        assert_eq!(p.environments_of(&at("kind-x", "qa-copy")), vec!["qa"]);
        assert_eq!(p.environments_of(&at("ferry-qa", "qa-copy")), vec!["qa"]);
        let clone = |from: Location, to: Location| {
            p.decide(&Request {
                action: Action::Clone,
                from: Some(from),
                to: Some(to),
                identities: dev(),
            })
        };
        let d = clone(at("ferry-prod", "shop"), at("ferry-prod", "qa-copy"));
        assert!(!d.allowed, "{}", d.reason);
        assert_eq!(d.rule.unwrap().index, 2);
        let d = clone(at("ferry-qa", "shop"), at("ferry-prod", "shop"));
        assert!(!d.allowed, "{}", d.reason);
        let d = clone(at("ferry-prod", "shop"), at("ferry-qa", "shop"));
        assert!(d.allowed, "{}", d.reason);
    }

    #[test]
    fn a_deny_holds_against_an_allow_that_is_not_inside_it() {
        // Without the scoping (a cluster in both environments by name), the deny into
        // prod still wins over the developers' allow into qa: `to: qa` is not inside
        // `to: prod`.
        let doc = OLD_README.replace(
            "match: [{context: \"ferry-qa*\"}, {namespace: \"qa-*\"}]",
            "match: [{context: \"ferry-qa*\"}, {context: \"ferry-prod\", namespace: \"qa-*\"}]",
        );
        let p = Policy::parse(&doc).unwrap();
        let to = at("ferry-prod", "qa-copy");
        assert_eq!(p.environments_of(&to), vec!["prod", "qa"]);
        let d = p.decide(&Request {
            action: Action::Clone,
            from: Some(at("ferry-prod", "shop")),
            to: Some(to),
            identities: dev(),
        });
        assert!(!d.allowed, "{}", d.reason);
        assert_eq!(d.rule.as_ref().unwrap().index, 2);
        assert!(
            d.reason
                .contains("its `to` (qa) is not inside the deny's `to` (prod)"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn an_allow_inside_a_deny_is_its_exception_and_a_tie_goes_to_the_deny() {
        let doc = r#"
version: 1
admins: ["ed25519:0000000000000000000000000000000000000000000000000000000000000001"]
environments:
  - name: prod
    match: [{context: "prod"}]
  - name: scratch
    match: [{context: "prod", namespace: "scratch-*"}]
rules:
  - deny: "*"
    subjects: "*"
    to: prod
  - allow: clone
    subjects: "group:developers"
    to: scratch
  - allow: clone
    subjects: "*"
    to: prod
"#;
        let p = Policy::parse(doc).unwrap();
        let clone = |ns: &str, who: &str, groups: &[&str]| {
            p.decide(&Request {
                action: Action::Clone,
                from: Some(at("prod", "shop")),
                to: Some(at("prod", ns)),
                identities: vec![Identity {
                    cluster: "prod".into(),
                    username: who.into(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                }],
            })
        };
        // scratch lies inside prod, developers inside anyone, clone inside *.
        let d = clone("scratch-1", "dev", &["developers"]);
        assert!(d.allowed, "{}", d.reason);
        assert_eq!(d.rule.unwrap().index, 2);
        // Outside scratch only the deny and rule 3 match; rule 3 is narrower in its
        // actions only, which is enough: clone by anyone into prod.
        let d = clone("shop", "eve", &[]);
        assert!(d.allowed, "{}", d.reason);
        assert_eq!(d.rule.unwrap().index, 3);
        // A tie goes to the deny.
        let p = Policy::parse(&doc.replace(
            "  - allow: clone\n    subjects: \"*\"",
            "  - allow: \"*\"\n    subjects: \"*\"",
        ))
        .unwrap();
        let d = p.decide(&Request {
            action: Action::Clone,
            from: None,
            to: Some(at("prod", "shop")),
            identities: dev(),
        });
        assert!(!d.allowed, "{}", d.reason);
        assert!(d.reason.contains("a tie goes to the deny"), "{}", d.reason);
    }

    fn pinned(server: &str, ca: &str, ns: &str) -> Location {
        Location {
            cluster: "renamed".into(),
            context: "renamed".into(),
            server: server.into(),
            namespace: Some(ns.into()),
            identity: ClusterIdentity {
                server: server.into(),
                ca: vec![ca.into()],
                ..ClusterIdentity::default()
            },
            ..Location::default()
        }
    }

    #[test]
    fn version_2_environments_follow_the_cluster_not_its_name() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let doc = format!(
            r#"
version: 2
admins: ["ed25519:0000000000000000000000000000000000000000000000000000000000000001"]
environments:
  - name: prod
    match: [{{server: "https://prod:6443", ca: "{a}"}}, {{eksArn: "arn:aws:eks:*:111122223333:cluster/prod-*"}}]
  - name: qa
    match: [{{server: "https://qa:6443", ca: ["{b}"], context: "ferry-qa"}}]
"#
        );
        let p = Policy::parse(&doc).unwrap();
        // The context is named anything: the server and CA decide.
        assert_eq!(
            p.environments_of(&pinned("https://prod:6443", &a, "x")),
            vec!["prod"]
        );
        // The prod CA on the qa address (or the reverse) is nobody.
        assert!(
            p.environments_of(&pinned("https://qa:6443", &a, "x"))
                .is_empty()
        );
        assert!(
            p.environments_of(&pinned("https://prod:6443", &b, "x"))
                .is_empty()
        );
        // A context name narrows a pinned selector: qa only as context ferry-qa.
        let mut q = pinned("https://qa:6443", &b, "x");
        assert!(p.environments_of(&q).is_empty());
        q.context = "ferry-qa".into();
        assert_eq!(p.environments_of(&q), vec!["qa"]);
        // A bundle with a CA the selector does not list is not the cluster.
        let mut both = pinned("https://prod:6443", &a, "x");
        both.identity.ca.push(b.clone());
        assert!(p.environments_of(&both).is_empty());
        // An unverified connection has no CA: nobody.
        let mut unverified = pinned("https://prod:6443", &a, "x");
        unverified.identity.ca.clear();
        assert!(p.environments_of(&unverified).is_empty());
        // EKS by the ARN EKS reports; an ARN-shaped context name counts for nothing.
        let eks = Location {
            identity: ClusterIdentity {
                eks_arn: Some("arn:aws:eks:eu-west-1:111122223333:cluster/prod-1".into()),
                ..ClusterIdentity::default()
            },
            ..Location::default()
        };
        assert_eq!(p.environments_of(&eks), vec!["prod"]);
        let named = Location {
            context: "arn:aws:eks:eu-west-1:111122223333:cluster/prod-1".into(),
            account: Some("111122223333".into()),
            ..Location::default()
        };
        assert!(p.environments_of(&named).is_empty());
    }

    #[test]
    fn locations_match_by_context_labels_and_accounts() {
        let p = Policy::parse(DOC).unwrap();
        let mut l = loc("anything");
        l.context = "eks-prod".into();
        assert_eq!(p.environments_of(&l), vec!["prod"]);
        let mut l = loc("feature-1");
        l.namespace_labels.insert("tier".into(), "dev".into());
        assert_eq!(p.environments_of(&l), vec!["dev"]);
        assert_eq!(
            Location::account_from_arn(&["x", "arn:aws:eks:eu-west-1:123456789012:cluster/prod"]),
            Some("123456789012".into())
        );
        assert_eq!(Location::account_from_arn(&["arn:aws:iam::1:role/x"]), None);
    }
}

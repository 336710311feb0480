//! Deciding a request: which rules match, which one wins, and who could do it instead.
//!
//! A rule matches a request when it names the action (or `*`), one of its subjects
//! matches the identity on **every** cluster involved (a user by name, a group by
//! membership, `*` anyone), and its `from` and `to` contain the request's locations (an
//! environment set names environments; `*` matches any location, also none).
//!
//! The most specific matching rule wins, compared in this order:
//! 1. the subject that matched: a user beats a group beats anyone;
//! 2. how many of `from` and `to` name environments (2, 1 or 0);
//! 3. a rule naming the action beats one with `*`;
//! 4. on a full tie, deny beats allow; then the rule earlier in the file is reported.
//!
//! No matching rule: denied (a policy exists, so what it does not allow is denied).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::document::{
    Action, Effect, EnvSet, Environment, Policy, Rule, ScrubRule, Subject, glob,
};

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

impl Environment {
    /// Whether `loc` is in this environment.
    pub fn contains(&self, loc: &Location) -> bool {
        self.selectors.iter().any(|s| {
            let field =
                |pat: &Option<String>, value: &str| pat.as_ref().is_none_or(|p| glob(p, value));
            field(&s.context, &loc.context)
                && field(&s.cluster, &loc.cluster)
                && field(&s.server, &loc.server)
                && s.account
                    .as_ref()
                    .is_none_or(|p| loc.account.as_deref().is_some_and(|a| glob(p, a)))
                && s.namespace
                    .as_ref()
                    .is_none_or(|p| loc.namespace.as_deref().is_some_and(|n| glob(p, n)))
                && s.namespace_labels
                    .iter()
                    .all(|(k, v)| loc.namespace_labels.get(k) == Some(v))
        })
    }
}

fn subject_matches(s: &Subject, ids: &[Identity]) -> bool {
    match s {
        Subject::Anyone => true,
        Subject::User(u) => !ids.is_empty() && ids.iter().all(|i| &i.username == u),
        Subject::Group(g) => !ids.is_empty() && ids.iter().all(|i| i.groups.contains(g)),
    }
}

/// (subject rank, named environments, named action, deny) of a matching rule.
type Specificity = (u8, u8, u8, u8);

impl Policy {
    /// The environments `loc` is in.
    pub fn environments_of(&self, loc: &Location) -> Vec<&str> {
        self.environments
            .iter()
            .filter(|e| e.contains(loc))
            .map(|e| e.name.as_str())
            .collect()
    }

    fn env_matches(&self, set: &EnvSet, loc: Option<&Location>) -> bool {
        match set {
            EnvSet::Any => true,
            EnvSet::Named(names) => loc.is_some_and(|l| {
                self.environments
                    .iter()
                    .any(|e| names.contains(&e.name) && e.contains(l))
            }),
        }
    }

    /// The specificity of `rule` for `req`, or None when it does not match.
    fn specificity(&self, rule: &Rule, req: &Request) -> Option<Specificity> {
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
            .map(Subject::rank)
            .max()?;
        let named = u8::from(matches!(rule.from, EnvSet::Named(_)))
            + u8::from(matches!(rule.to, EnvSet::Named(_)));
        Some((
            subject,
            named,
            u8::from(!rule.actions.is_empty()),
            u8::from(rule.effect == Effect::Deny),
        ))
    }

    /// The winning rule's index (0-based), if any rule matches.
    fn winner(&self, req: &Request) -> Option<usize> {
        let mut best: Option<(Specificity, usize)> = None;
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(s) = self.specificity(r, req)
                && best.is_none_or(|(b, _)| s > b)
            {
                best = Some((s, i));
            }
        }
        best.map(|(_, i)| i)
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
        match self.winner(req) {
            Some(i) => {
                let rule = &self.rules[i];
                let allowed = rule.effect == Effect::Allow;
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
                let overruled: Vec<String> = self
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(j, r)| *j != i && self.specificity(r, req).is_some())
                    .map(|(j, _)| (j + 1).to_string())
                    .collect();
                if !overruled.is_empty() {
                    reason.push_str(&format!(
                        "; it is more specific than the other matching rule(s) {}",
                        overruled.join(", ")
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
            None => Decision {
                allowed: false,
                rule: None,
                reason: format!(
                    "{} is denied {route} for {who}: no rule allows it, and once a policy exists what no rule allows is denied",
                    req.action
                ),
                scrub: Vec::new(),
                could: self.who_could(req),
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
            if self
                .winner(&probe)
                .is_some_and(|i| self.rules[i].effect == Effect::Allow)
            {
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
        assert_eq!(d.could, vec!["user:root"]);
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
        assert_eq!(d.rule.unwrap().index, 4);
        assert!(
            d.reason
                .contains("more specific than the other matching rule(s) 1"),
            "{}",
            d.reason
        );
        // user:root with * everywhere beats the deny for anyone into prod.
        let d = p.decide(&req(Action::Restore, None, Some("prod-x"), id("root", &[])));
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

//! The Kubernetes RBAC that makes a cluster enforce the policy's boundaries itself, so
//! enforcement does not depend on the client.
//!
//! For an environment and the namespaces in it: two ClusterRoles (`ferry:policy:writer`
//! to create and change workloads, `ferry:policy:reader` to read them and run the volume
//! mover), a RoleBinding to the writer role in each namespace for the subjects of allow
//! rules that may restore, migrate or clone **into** the environment, and one to the
//! reader role for the subjects that may back up, migrate or clone **from** it.
//!
//! RBAC only grants: deny rules cannot be expressed, so a deny that carves an exception
//! out of a broader allow is enforced by Ferry only.

use serde_json::{Value, json};

use super::document::{Action, Effect, EnvSet, Policy, Rule, Subject};

/// The label every emitted object carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ferry-policy");

pub const WRITER_ROLE: &str = "ferry:policy:writer";
pub const READER_ROLE: &str = "ferry:policy:reader";

const GROUPS: [&str; 8] = [
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "discovery.k8s.io",
    "snapshot.storage.k8s.io",
];

fn labels() -> Value {
    json!({ MANAGED_BY.0: MANAGED_BY.1 })
}

fn cluster_roles() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": WRITER_ROLE, "labels": labels()},
            "rules": [{
                "apiGroups": GROUPS,
                "resources": ["*"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]
            }]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": READER_ROLE, "labels": labels()},
            "rules": [
                {"apiGroups": GROUPS, "resources": ["*"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"], "verbs": ["create", "delete"]},
                {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
                {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"], "verbs": ["create", "delete"]}
            ]
        }),
    ]
}

fn rbac_subject(s: &Subject) -> Value {
    let (kind, name) = match s {
        Subject::User(u) => ("User", u.as_str()),
        Subject::Group(g) => ("Group", g.as_str()),
        Subject::Anyone => ("Group", "system:authenticated"),
    };
    json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn includes(set: &EnvSet, env: &str) -> bool {
    match set {
        EnvSet::Any => true,
        EnvSet::Named(n) => n.iter().any(|x| x == env),
    }
}

fn any_action(rule: &Rule, pred: fn(Action) -> bool) -> bool {
    rule.actions.is_empty() || rule.actions.iter().any(|a| pred(*a))
}

/// The subjects allow rules let write into `env` and read from `env`.
pub fn subjects(policy: &Policy, env: &str) -> (Vec<Subject>, Vec<Subject>) {
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for r in policy.rules.iter().filter(|r| r.effect == Effect::Allow) {
        if includes(&r.to, env) && any_action(r, Action::writes) {
            writers.extend(r.subjects.iter().cloned());
        }
        if includes(&r.from, env) && any_action(r, Action::reads) {
            readers.extend(r.subjects.iter().cloned());
        }
    }
    for v in [&mut writers, &mut readers] {
        v.sort();
        v.dedup();
    }
    (writers, readers)
}

/// The RBAC objects for environment `env` over `namespaces` (those of one cluster that
/// are in the environment).
pub fn emit(policy: &Policy, env: &str, namespaces: &[String]) -> Vec<Value> {
    let (writers, readers) = subjects(policy, env);
    let mut out = cluster_roles();
    for ns in namespaces {
        for (role, who, suffix) in [
            (WRITER_ROLE, &writers, "writers"),
            (READER_ROLE, &readers, "readers"),
        ] {
            if who.is_empty() {
                continue;
            }
            out.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": format!("ferry-policy-{env}-{suffix}"), "namespace": ns, "labels": labels()},
                "subjects": who.iter().map(rbac_subject).collect::<Vec<_>>(),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_and_readers_come_from_allow_rules() {
        let p = Policy::parse(
            r#"
version: 1
admins: ["ed25519:0000000000000000000000000000000000000000000000000000000000000001"]
environments:
  - name: prod
    match: [{namespace: "prod*"}]
  - name: qa
    match: [{namespace: "qa*"}]
rules:
  - allow: clone
    subjects: ["group:developers"]
    from: prod
    to: qa
  - allow: restore
    subjects: "user:sam"
    to: qa
  - deny: "*"
    subjects: "group:interns"
    to: qa
  - allow: backup
    subjects: "*"
"#,
        )
        .unwrap();
        let (w, r) = subjects(&p, "qa");
        assert_eq!(
            w,
            [
                Subject::User("sam".into()),
                Subject::Group("developers".into())
            ]
        );
        assert_eq!(r, [Subject::Anyone]);
        let (w, r) = subjects(&p, "prod");
        assert!(w.is_empty());
        assert_eq!(r, [Subject::Group("developers".into()), Subject::Anyone]);

        let objs = emit(&p, "qa", &["qa".into(), "qa-2".into()]);
        // Two ClusterRoles, then writers and readers in each namespace.
        assert_eq!(objs.len(), 6);
        assert_eq!(objs[2]["metadata"]["namespace"], "qa");
        assert_eq!(objs[2]["roleRef"]["name"], WRITER_ROLE);
        assert_eq!(objs[2]["subjects"][1]["name"], "developers");
        assert_eq!(objs[3]["subjects"][0]["name"], "system:authenticated");
        assert_eq!(objs[5]["metadata"]["namespace"], "qa-2");
    }
}

//! Policies end to end: the `ferry` binary against sandbox clusters that authenticate
//! different users and groups. Overlapping rules, identities from SelfSubjectReview,
//! tampered / unsigned / missing / rolled-back policies, a developer's clone prod→qa
//! allowed and qa→prod refused, the emitted RBAC enforced by a cluster, the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_policy::signing::PolicyEnvelope;
use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_repo::backend::FileKind;
use ferry_sandbox::{KubeconfigUser, Sandbox, SandboxConfig, write_kubeconfig_with_users};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// A repository, a folder for Ferry's own files, and the kubeconfig the binary uses.
pub(super) struct Env {
    pub(super) t: common::TestRepo,
    pub(super) home: tempfile::TempDir,
    pub(super) kubeconfig: PathBuf,
}

impl Env {
    pub(super) fn new() -> Env {
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        Env {
            t: common::new_repo(),
            home,
            kubeconfig,
        }
    }

    pub(super) fn p(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    pub(super) fn run(&self, args: &[&str]) -> Output {
        support::ferry_in(self.home.path(), &self.kubeconfig, &self.t.path())
            .args(args)
            .output()
            .unwrap()
    }

    pub(super) fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "ferry {args:?} failed:\n{}", text(&o));
        text(&o)
    }

    /// A new admin key file; returns its path and public key.
    pub(super) fn keygen(&self, name: &str) -> (PathBuf, String) {
        let path = self.p(name);
        let out = self.run(&[
            "policy",
            "keygen",
            "--out",
            path.to_str().unwrap(),
            "--label",
            name,
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(public.starts_with("ed25519:"), "{public}");
        (path, public)
    }

    pub(super) fn set_policy(&self, doc: &str, key: &Path) -> Output {
        let file = self.p("policy.yaml");
        std::fs::write(&file, doc).unwrap();
        self.run(&[
            "policy",
            "set",
            file.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--yes",
        ])
    }
}

pub(super) fn text(o: &Output) -> String {
    support::said(o)
}

fn policy_doc(admin: &str) -> String {
    format!(
        r#"version: 1
admins: ["{admin}"]
environments:
  - name: prod
    match:
      - context: "ferry-prod*"
  - name: qa
    match:
      - context: "ferry-qa*"
rules:
  - allow: [clone, migrate]
    subjects: ["group:developers"]
    from: prod
    to: qa
    scrub:
      - kind: Secret
        mode: placeholder
    reason: developers refresh QA from production
  - deny: "*"
    subjects: "*"
    to: prod
    reason: production changes go through SRE
  - allow: restore
    subjects: "group:sre"
    to: prod
  - allow: "*"
    subjects: "user:root"
  - allow: backup
    subjects: "*"
  - allow: "*"
    subjects: "user:root"
    to: prod
    reason: root may write into prod (rule 4 alone does not outrank rule 2, a deny gives way only to an allow inside it)
"#
    )
}

/// Two sandboxes, prod and qa, each knowing `dev` (group developers) and `sam` (group
/// sre), both groups bound to cluster-admin so only Ferry's policy stands in the way.
struct Clusters {
    prod: Sandbox,
    qa: Sandbox,
}

async fn start_clusters(env: &Env) -> Clusters {
    let mut prod = Sandbox::start(SandboxConfig::new("prod", env.p("prod")))
        .await
        .unwrap();
    let mut qa = Sandbox::start(SandboxConfig::new("qa", env.p("qa")))
        .await
        .unwrap();
    let mut users = Vec::new();
    for s in [&mut prod, &mut qa] {
        for (user, group) in [("dev", "developers"), ("sam", "sre")] {
            let token = s.add_user(user, &[group.to_string()]).unwrap();
            users.push(KubeconfigUser {
                cluster: s.kubeconfig_entry().cluster,
                user: user.into(),
                token,
            });
        }
    }
    write_kubeconfig_with_users(
        &env.kubeconfig,
        &[prod.kubeconfig_entry(), qa.kubeconfig_entry()],
        &users,
    )
    .unwrap();
    let linked = Linked::load(&Sources {
        paths: vec![env.kubeconfig.clone()],
    });
    for name in ["ferry-prod", "ferry-qa"] {
        let admin = linked.get(name).unwrap().client().await.unwrap();
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "everyone-admin"},
            "subjects": [
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "developers"},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "sre"}
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
        }))
        .unwrap();
        Api::<ClusterRoleBinding>::all(admin.clone())
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
    }
    let prod_admin = linked.get("ferry-prod").unwrap().client().await.unwrap();
    create_ns(&prod_admin, "shop").await;
    let cms: Api<ConfigMap> = Api::namespaced(prod_admin.clone(), "shop");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "settings"}, "data": {"mode": "live"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(prod_admin, "shop");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "db"}, "type": "Opaque",
                "data": {"password": "aHVudGVyMg=="}}))
            .unwrap(),
        )
        .await
        .unwrap();
    Clusters { prod, qa }
}

async fn create_ns(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

async fn client(env: &Env, context: &str) -> kube::Client {
    Linked::load(&Sources {
        paths: vec![env.kubeconfig.clone()],
    })
    .get(context)
    .unwrap()
    .client()
    .await
    .unwrap()
}

#[test]
fn overlapping_rules_decide_by_the_identity_each_cluster_reports() {
    let env = Env::new();
    let c = env.t.rt.block_on(start_clusters(&env));
    // No policy yet: everything is allowed, and says so.
    let out = env.ok(&[
        "policy",
        "check",
        "--action",
        "clone",
        "--from",
        "ferry-qa-dev",
        "--to",
        "ferry-prod-dev",
    ]);
    assert!(out.contains("no policy"), "{out}");

    let (key, public) = env.keygen("admin.key");
    let o = env.set_policy(&policy_doc(&public), &key);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the first policy"), "{}", text(&o));

    // dev is in group developers on both clusters: rule 1.
    let o = env.run(&[
        "policy",
        "check",
        "--action",
        "clone",
        "--from",
        "ferry-prod-dev/shop",
        "--to",
        "ferry-qa-dev/shop-copy",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("allowed") && out.contains("rule 1 ("), "{out}");
    assert!(
        out.contains("dev on ferry-prod-dev (groups: developers, system:authenticated)"),
        "{out}"
    );
    assert!(
        out.contains("scrub: Secrets replaced by placeholders"),
        "{out}"
    );

    // The other way round: rule 2 (deny anyone into prod), and who could instead.
    let o = env.run(&[
        "policy",
        "check",
        "--action",
        "clone",
        "--from",
        "ferry-qa-dev/shop",
        "--to",
        "ferry-prod-dev/shop2",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(out.contains("denied") && out.contains("rule 2 ("), "{out}");
    assert!(out.contains("production changes go through SRE"), "{out}");
    assert!(out.contains("who could: user:root"), "{out}");

    // sam (group sre) may restore into prod: the group rule beats the rule for anyone.
    let o = env.run(&[
        "policy",
        "check",
        "--action",
        "restore",
        "--to",
        "ferry-prod-sam/shop",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("rule 3 (") && out.contains("more specific than the other matching rule(s) 2"),
        "{out}"
    );
    // dev may not, and is told who may.
    let o = env.run(&[
        "policy",
        "check",
        "--action",
        "restore",
        "--to",
        "ferry-prod-dev/shop",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(out.contains("who could: user:root, group:sre"), "{out}");
    // The admin context (system:masters, no developers group) may not clone into qa:
    // nothing allows it.
    let o = env.run(&[
        "policy",
        "check",
        "--action",
        "clone",
        "--from",
        "ferry-prod/shop",
        "--to",
        "ferry-qa/x",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(out.contains("no rule allows it"), "{out}");

    env.t.rt.block_on(async {
        c.prod.shutdown().await.unwrap();
        c.qa.shutdown().await.unwrap();
    });
}

#[test]
fn a_developer_clones_prod_to_qa_but_not_back_and_the_audit_trail_shows_both() {
    let env = Env::new();
    let c = env.t.rt.block_on(start_clusters(&env));
    let (key, public) = env.keygen("admin.key");
    let o = env.set_policy(&policy_doc(&public), &key);
    assert!(o.status.success(), "{}", text(&o));

    // prod -> qa as dev: allowed by rule 1, the Secret arrives as a placeholder.
    let out = env.ok(&[
        "clone",
        "--from",
        "ferry-prod-dev",
        "--to",
        "ferry-qa-dev",
        "-n",
        "shop",
        "--as",
        "shop-copy",
        "--no-volumes",
        "--yes",
    ]);
    assert!(
        out.contains("allowed by policy") && out.contains("rule 1 ("),
        "{out}"
    );
    assert!(
        out.contains("policy scrub: Secret shop/db is copied with empty values: fill in password"),
        "{out}"
    );
    let (secret, cm) = env.t.rt.block_on(async {
        let qa = client(&env, "ferry-qa").await;
        let s = Api::<Secret>::namespaced(qa.clone(), "shop-copy")
            .get("db")
            .await
            .unwrap();
        let cm = Api::<ConfigMap>::namespaced(qa, "shop-copy")
            .get("settings")
            .await
            .unwrap();
        (s, cm)
    });
    let data = secret.data.unwrap();
    assert!(
        data["password"].0.is_empty(),
        "the secret's value was copied: {data:?}"
    );
    assert_eq!(
        secret.metadata.annotations.unwrap()["ferry.io/fill-in"],
        "password"
    );
    assert_eq!(cm.data.unwrap()["mode"], "live");

    // qa -> prod as dev: refused before anything is planned, with the rule and who could.
    let o = env.run(&[
        "clone",
        "--from",
        "ferry-qa-dev",
        "--to",
        "ferry-prod-dev",
        "-n",
        "shop-copy",
        "--as",
        "shop-back",
        "--no-volumes",
        "--yes",
    ]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("rule 2: deny * * from * to prod"), "{out}");
    assert!(out.contains("who could do it instead: user:root"), "{out}");
    assert!(
        !out.contains("snapshot"),
        "a capture ran although the clone was denied: {out}"
    );
    let exists = env.t.rt.block_on(async {
        let prod = client(&env, "ferry-prod").await;
        Api::<Namespace>::all(prod)
            .get_opt("shop-back")
            .await
            .unwrap()
    });
    assert!(exists.is_none(), "the denied clone created its namespace");

    // The audit trail: the policy set, then both attempts, with identities, rules,
    // outcome and plan.
    let lines = env.ok(&["audit", "--json"]);
    let mut records: Vec<serde_json::Value> = lines
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{lines}");
    assert_eq!(records.remove(0)["action"], "change-policy");
    let ok = &records[0];
    assert_eq!(ok["action"], "clone");
    assert_eq!(ok["outcome"], "succeeded");
    assert_eq!(ok["allowed"], true);
    assert_eq!(ok["rule"], 1);
    assert_eq!(ok["from"], "ferry-prod-dev/shop");
    assert_eq!(ok["to"], "ferry-qa-dev/shop-copy");
    assert_eq!(ok["identities"][0]["username"], "dev");
    assert_eq!(ok["identities"][1]["cluster"], "ferry-qa-dev");
    assert!(ok["plan"].as_str().unwrap().contains("to create"), "{ok}");
    assert!(ok["snapshot"].is_string());
    assert_eq!(ok["policy_seq"], 1);
    let denied = &records[1];
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["rule"], 2);
    assert_eq!(denied["from"], "ferry-qa-dev/shop-copy");
    assert!(denied["plan"].is_null());
    assert_eq!(denied["previous"], ok["id"]);
    let table = env.ok(&["audit"]);
    assert!(
        table.contains("clone    succeeded") && table.contains("clone    denied"),
        "{table}"
    );

    // Removing the capture is delete-snapshots, which no rule grants developers: refused
    // with the identity on the cluster the capture came from, and recorded.
    let snap = ok["snapshot"].as_str().unwrap().to_string();
    // A dry run of restoring it into prod shows the plan and says the policy would
    // refuse it (exit 5), recording nothing.
    let o = env.run(&[
        "plan",
        &snap[..8],
        "--context",
        "ferry-prod-dev",
        "--map-namespace",
        "shop=shop-restored",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(5), "{out}");
    assert!(
        out.contains("the policy would refuse this restore"),
        "{out}"
    );
    assert!(out.contains("shop-restored"), "no plan shown: {out}");
    let o = env.run(&["forget", &snap[..8]]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("denied by policy"), "{out}");
    let listed = env.ok(&["snapshots"]);
    assert!(
        listed.contains(&snap[..8]),
        "the capture was removed: {listed}"
    );
    let lines = env.ok(&["audit", "--json"]);
    let last: serde_json::Value =
        serde_json::from_str(lines.lines().rfind(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(last["action"], "delete-snapshots");
    assert_eq!(last["outcome"], "denied");

    env.t.rt.block_on(async {
        c.prod.shutdown().await.unwrap();
        c.qa.shutdown().await.unwrap();
    });
}

#[test]
fn change_policy_rules_need_an_allowed_identity_and_every_change_is_recorded() {
    let env = Env::new();
    let c = env.t.rt.block_on(start_clusters(&env));
    let (key, public) = env.keygen("admin.key");
    let doc = format!(
        "{}  - allow: change-policy\n    subjects: \"group:sre\"\n    reason: only SRE edits the policy\n",
        policy_doc(&public)
    );
    // The first policy: the administrator key decides.
    let o = env.set_policy(&doc, &key);
    assert!(o.status.success(), "{}", text(&o));

    // From now on the key is not enough: the cluster must say the user is in sre.
    let v2 = doc.replace("reason: production", "reason: really, production");
    let file = env.p("policy-v2.yaml");
    std::fs::write(&file, &v2).unwrap();
    let set_as = |context: &str| {
        env.run(&[
            "policy",
            "set",
            file.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--yes",
            "--context",
            context,
        ])
    };
    let o = set_as("ferry-prod-dev");
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("change-policy denied") && out.contains("group:sre"),
        "{out}"
    );
    assert!(env.ok(&["policy", "show"]).contains("policy version 1"));
    let o = set_as("ferry-prod-sam");
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("allowed by policy") && out.contains("only SRE"),
        "{out}"
    );
    assert!(env.ok(&["policy", "show"]).contains("policy version 2"));

    // The trail: the first policy, dev's denied attempt, sam's change, with identities.
    let records: Vec<serde_json::Value> = env
        .ok(&["audit", "--json"])
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &serde_json::Value| r["action"] == "change-policy")
        .collect();
    let summary: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap().to_string(),
                r["identities"][0]["username"]
                    .as_str()
                    .unwrap_or("-")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("succeeded".to_string(), "-".to_string()),
            ("denied".to_string(), "dev".to_string()),
            ("succeeded".to_string(), "sam".to_string()),
        ],
        "{records:#?}"
    );
    assert!(
        records[2]["plan"]
            .as_str()
            .unwrap()
            .contains("policy version 2"),
        "{records:#?}"
    );

    env.t.rt.block_on(async {
        c.prod.shutdown().await.unwrap();
        c.qa.shutdown().await.unwrap();
    });
}

fn policy_files(env: &Env) -> Vec<String> {
    let repo = env.t.reopen();
    let mut names: Vec<String> = repo
        .block_on(repo.backend().list(FileKind::Policy))
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    names.sort();
    names
}

#[test]
fn tampered_unsigned_missing_and_rolled_back_policies_are_refused() {
    let env = Env::new();
    let (key, public) = env.keygen("admin.key");
    let doc = policy_doc(&public);
    // The repository's config as it was before any policy: no pin.
    let config_path = env.t.path().join("config");
    let unpinned = std::fs::read(&config_path).unwrap();
    assert!(env.set_policy(&doc, &key).status.success());
    let show = env.ok(&["policy", "show"]);
    assert!(
        show.contains("policy version 1") && show.contains("admin.key"),
        "{show}"
    );
    let [name] = policy_files(&env).try_into().unwrap();

    // Someone without the admin key cannot set a policy.
    let (other, _) = env.keygen("other.key");
    let o = env.set_policy(
        &doc.replace("subjects: \"user:root\"", "subjects: \"user:eve\""),
        &other,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("is not an administrator"), "{}", text(&o));

    let repo = env.t.reopen();
    let original = repo.load_encrypted(FileKind::Policy, &name).unwrap();
    let envelope: PolicyEnvelope = serde_json::from_slice(&original).unwrap();

    // Tampered: a rule edited inside the signed body, under the same name.
    let mut edited = envelope.clone();
    edited.body = edited.body.replace("user:root", "user:eve");
    assert_ne!(edited.body, envelope.body);
    repo.save_encrypted(
        FileKind::Policy,
        &name,
        &serde_json::to_vec(&edited).unwrap(),
    )
    .unwrap();
    for args in [
        &["policy", "show"][..],
        &["policy", "check", "--action", "backup"][..],
    ] {
        let o = env.run(args);
        assert!(!o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("was tampered with"), "{}", text(&o));
    }
    // Unsigned.
    let mut unsigned = envelope.clone();
    unsigned.signature.clear();
    repo.save_encrypted(
        FileKind::Policy,
        &name,
        &serde_json::to_vec(&unsigned).unwrap(),
    )
    .unwrap();
    let o = env.run(&["policy", "show"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is unsigned"), "{}", text(&o));
    // Missing although the repository requires one.
    repo.block_on(repo.backend().remove(FileKind::Policy, &name))
        .unwrap();
    let o = env.run(&["policy", "show"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("requires a policy (version 1"),
        "{}",
        text(&o)
    );
    // Back in place: fine again; then a second version, whose removal is a rollback.
    repo.save_encrypted(FileKind::Policy, &name, &original)
        .unwrap();
    env.ok(&["policy", "show"]);
    let o = env.set_policy(
        &doc.replace("reason: production", "reason: really, production"),
        &key,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("+") && text(&o).contains("really"),
        "{}",
        text(&o)
    );
    let v2: Vec<String> = policy_files(&env)
        .into_iter()
        .filter(|n| *n != name)
        .collect();
    assert_eq!(v2.len(), 1);
    repo.block_on(repo.backend().remove(FileKind::Policy, &v2[0]))
        .unwrap();
    let o = env.run(&["policy", "show"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("went back from version 2 to 1"),
        "{}",
        text(&o)
    );

    // Whoever can write the storage (and knows the repository password) removes every
    // policy file and puts back the config without a pin: the repository alone no longer
    // says a policy is required, but this machine remembers version 2.
    repo.block_on(repo.backend().remove(FileKind::Policy, &name))
        .unwrap();
    std::fs::write(&config_path, &unpinned).unwrap();
    assert!(policy_files(&env).is_empty());
    for args in [
        &["policy", "show"][..],
        &["policy", "check", "--action", "backup"][..],
    ] {
        let o = env.run(args);
        let out = text(&o);
        assert!(!o.status.success(), "{args:?}: {out}");
        assert!(
            out.contains("this machine has verified version 2")
                && out.contains("now holds none")
                && out.contains("policy-seen"),
            "{out}"
        );
    }
    // A machine that never saw the policy cannot know (the remedy is in the message).
    let o = Command::new(support::ferry_bin())
        .env("XDG_STATE_HOME", env.p("elsewhere/state"))
        .env("XDG_DATA_HOME", env.p("elsewhere/data"))
        .env("XDG_CONFIG_HOME", env.p("elsewhere/config"))
        .env("HOME", env.p("elsewhere"))
        .env("FERRY_PASSWORD", "test password")
        .env("FERRY_REPO", env.t.path())
        .env_remove("FERRY_PASSWORD_FILE")
        .env_remove("FERRY_KEY_FILE")
        .stdin(Stdio::null())
        .args(["policy", "show"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("has no policy"), "{}", text(&o));
}

#[test]
fn the_emitted_rbac_lets_developers_create_in_qa_and_not_in_prod() {
    let env = Env::new();
    let (key, public) = env.keygen("admin.key");
    let doc = format!(
        r#"version: 1
admins: ["{public}"]
environments:
  - name: prod
    match: [{{namespace: "prod*"}}]
  - name: qa
    match: [{{namespace: "qa*"}}]
rules:
  - allow: clone
    subjects: "group:developers"
    from: prod
    to: qa
"#
    );
    assert!(env.set_policy(&doc, &key).status.success());
    let sandbox = env.t.rt.block_on(async {
        let mut s = Sandbox::start(SandboxConfig::new("one", env.p("one")))
            .await
            .unwrap();
        let token = s.add_user("dev", &["developers".to_string()]).unwrap();
        write_kubeconfig_with_users(
            &env.kubeconfig,
            &[s.kubeconfig_entry()],
            &[KubeconfigUser {
                cluster: "one".into(),
                user: "dev".into(),
                token,
            }],
        )
        .unwrap();
        let admin = client(&env, "ferry-one").await;
        for ns in ["qa", "qa-2", "prod"] {
            create_ns(&admin, ns).await;
        }
        s
    });

    let yaml = env.ok(&["policy", "rbac", "--env", "qa", "--context", "ferry-one"]);
    assert!(yaml.contains("namespaces qa, qa-2"), "{yaml}");
    assert!(
        yaml.contains("kind: RoleBinding") && yaml.contains("name: developers"),
        "{yaml}"
    );
    assert!(!yaml.contains("namespace: prod"), "{yaml}");
    // Applying needs a confirmation.
    let o = env.run(&[
        "policy",
        "rbac",
        "--env",
        "qa",
        "--context",
        "ferry-one",
        "--apply",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--yes"),
        "{}",
        text(&o)
    );
    let out = env.ok(&[
        "policy",
        "rbac",
        "--env",
        "qa",
        "--context",
        "ferry-one",
        "--apply",
        "--yes",
    ]);
    assert!(
        out.contains("create    RoleBinding ferry-policy-qa-writers in qa-2"),
        "{out}"
    );
    assert!(out.contains("4 RBAC object(s) applied"), "{out}");
    let again = env.ok(&[
        "policy",
        "rbac",
        "--env",
        "qa",
        "--context",
        "ferry-one",
        "--apply",
        "--yes",
    ]);
    assert!(again.contains("nothing to apply"), "{again}");

    env.t.rt.block_on(async {
        let dev = client(&env, "ferry-one-dev").await;
        let cm = || -> ConfigMap {
            serde_json::from_value(json!({"metadata": {"name": "made-by-dev"}})).unwrap()
        };
        for ns in ["qa", "qa-2"] {
            Api::<ConfigMap>::namespaced(dev.clone(), ns)
                .create(&PostParams::default(), &cm())
                .await
                .unwrap();
        }
        let e = Api::<ConfigMap>::namespaced(dev.clone(), "prod")
            .create(&PostParams::default(), &cm())
            .await
            .unwrap_err();
        match e {
            kube::Error::Api(s) => assert_eq!(s.code, 403, "{s:?}"),
            other => panic!("expected 403, got {other:?}"),
        }
        sandbox.shutdown().await.unwrap();
    });
}

mod console {
    use std::time::Duration;

    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ferry_console::app::{App, Env as AppEnv, Load, Msg, View};
    use ferry_console::error::TaskError;
    use ferry_console::keymap::Keymap;
    use ferry_console::theme::Theme;
    use ferry_jobs::JobError;
    use ferry_k8s::mover::MoverOptions;
    use ferry_policy::AdminKey;
    use ferry_providers::kubeconfig::{Linked, Sources};

    use super::{Env, client, create_ns, policy_doc, start_clusters};

    pub(super) const LIMIT: Duration = Duration::from_secs(60);

    pub(super) fn key(app: &mut App, code: KeyCode) {
        app.key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    /// The console as the developer: only dev's contexts linked, every probe answered.
    pub(super) fn dev_app(env: &Env) -> App {
        let mut linked = Linked::load(&Sources {
            paths: vec![env.kubeconfig.clone()],
        });
        linked.clusters.retain(|c| c.name.ends_with("-dev"));
        let names: Vec<&str> = linked.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ferry-prod-dev", "ferry-qa-dev"]);
        let mut app = App::new(AppEnv {
            linked,
            repo: Ok(env.t.repo.clone()),
            rt: env.t.rt.handle().clone(),
            theme: Theme::builtin("dark"),
            keymap: Keymap::default_keys(),
            read_only: false,
            read_only_contexts: vec![],
            mover: MoverOptions::default(),
            reports: env.home.path().join("reports"),
            downloads: env.home.path().join("downloads"),
            clouds: Default::default(),
        });
        assert!(app.settle(LIMIT, |a| a.probed()));
        app
    }

    /// The console's migrate wizard as the developer, qa → prod: the plan step shows the
    /// denial with the rule and who could, nothing is captured, and the audit trail
    /// records the attempt.
    #[test]
    fn the_console_refuses_a_developer_migrating_qa_to_prod() {
        let env = Env::new();
        let c = env.t.rt.block_on(start_clusters(&env));
        env.t.rt.block_on(async {
            create_ns(&client(&env, "ferry-qa").await, "shop").await;
        });
        let key_file = AdminKey::generate("admin").unwrap();
        ferry_policy::store::store(&env.t.repo, &policy_doc(&key_file.public()), &key_file)
            .unwrap();

        let mut app = dev_app(&env);
        key(&mut app, KeyCode::Down);
        key(&mut app, KeyCode::Enter);
        assert_eq!(
            app.screen().view,
            View::Namespaces {
                cluster: "ferry-qa-dev".into()
            }
        );
        assert!(app.settle(LIMIT, |a| matches!(
            a.cluster("ferry-qa-dev").unwrap().namespaces,
            Some(Load::Ready(_))
        )));
        key(&mut app, KeyCode::Char('/'));
        for ch in "shop".chars() {
            key(&mut app, KeyCode::Char(ch));
        }
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.selected_row().unwrap().key, "shop");
        key(&mut app, KeyCode::Char(' '));
        key(&mut app, KeyCode::Char('m'));
        assert_eq!(
            app.wizard().expect("the wizard opens").target_name(),
            "ferry-prod-dev"
        );
        // The target step shows prod disabled, with the reason.
        assert!(app.settle(LIMIT, |a| {
            a.wizard().unwrap().targets[0].denied.is_some()
        }));
        let w = app.wizard().unwrap();
        let reason = w.targets[0].denied.clone().unwrap();
        assert!(
            reason.contains("rule 2 (deny * * from * to prod)"),
            "{reason}"
        );
        assert!(reason.contains("who could: user:root"), "{reason}");
        // qa -> qa: no rule decides, denied by default.
        let other = w.targets[1].denied.clone().unwrap();
        assert!(other.contains("no rule allows it"), "{other}");
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 30)).unwrap();
        term.draw(|f| ferry_console::screens::draw(f, &app))
            .unwrap();
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(
            screen.contains("ferry-prod-dev  denied by policy"),
            "{screen}"
        );
        // Enter on it is refused in place.
        key(&mut app, KeyCode::Enter);
        let w = app.wizard().unwrap();
        assert_eq!(w.step, ferry_console::wizard_state::Step::Target);
        assert!(
            w.error
                .as_ref()
                .unwrap()
                .contains("the policy denies ferry-prod-dev"),
            "{:?}",
            w.error
        );
        // Were the shown verdict stale, the plan step checks again: forget it and go on.
        let generation = app.wizard_generation();
        app.apply(Msg::WizardVerdicts(
            generation,
            vec![("ferry-prod-dev".into(), None)],
        ));
        // Target, namespaces (keep the name), storage classes, options, plan.
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Enter);
        assert!(app.settle(LIMIT, |a| matches!(
            a.wizard().unwrap().classes_used,
            Load::Ready(_)
        )));
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Enter);
        assert!(app.settle(LIMIT, |a| !matches!(
            a.wizard().unwrap().plan,
            Some(Load::Loading)
        )));
        match &app.wizard().unwrap().plan {
            Some(Load::Failed(e)) => {
                // Refused by the gate: a job failure whose cause is the policy.
                assert!(
                    matches!(e, TaskError::Job(f) if matches!(f.error, JobError::Policy(_))),
                    "{e:?}"
                );
                let e = e.to_string();
                assert!(e.contains("migrate is denied"), "{e}");
                assert!(e.contains("rule 2 (deny * * from * to prod)"), "{e}");
                assert!(e.contains("Who could do it instead: user:root"), "{e}");
            }
            other => panic!("the plan was not refused: {other:?}"),
        }
        // Nothing was captured; the attempt is in the audit trail.
        let (snaps, _) = ferry_repo::snapshot::list(&env.t.repo).unwrap();
        assert!(snaps.is_empty(), "a capture ran: {snaps:?}");
        // Two attempts: enter on the target shown denied, and the plan step.
        let deadline = std::time::Instant::now() + LIMIT;
        let records = loop {
            let (records, gaps) = ferry_policy::audit::read(&env.t.repo).unwrap();
            assert!(gaps.is_empty());
            if records.len() >= 2 || std::time::Instant::now() > deadline {
                break records;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(records.len(), 2, "{records:#?}");
        for r in &records {
            assert_eq!(r.action, ferry_policy::Action::Migrate);
            assert!(!r.allowed);
            assert_eq!(r.rule, Some(2));
            assert_eq!(r.identities[0].username, "dev");
            assert_eq!(r.to.as_deref(), Some("ferry-prod-dev/shop"));
        }

        // :audit shows them with the selected record in full; e exports JSON lines.
        for _ in 0..6 {
            if app.wizard().is_some() {
                key(&mut app, KeyCode::Esc);
            }
        }
        assert!(app.wizard().is_none());
        key(&mut app, KeyCode::Char(':'));
        for ch in "audit".chars() {
            key(&mut app, KeyCode::Char(ch));
        }
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.screen().view, View::Audit);
        assert!(app.settle(LIMIT, |a| a.audit_loaded()));
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 30)).unwrap();
        term.draw(|f| ferry_console::screens::draw(f, &app))
            .unwrap();
        let screen: String = term
            .backend()
            .buffer()
            .content()
            .chunks(160)
            .map(|l| l.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect();
        assert_eq!(
            screen.matches("migrate          denied").count(),
            2,
            "{screen}"
        );
        assert!(screen.contains("dev@ferry-qa-dev"), "{screen}");
        assert!(
            screen.contains("ferry-qa-dev/shop → ferry-prod-dev/shop"),
            "{screen}"
        );
        assert!(
            screen.contains("denied by policy version 1, rule 2"),
            "{screen}"
        );
        assert!(
            screen.contains("dev on ferry-qa-dev (groups: developers"),
            "{screen}"
        );
        key(&mut app, KeyCode::Char('e'));
        let reports = env.home.path().join("reports");
        assert!(app.settle(LIMIT, |a| {
            a.status().is_some_and(|(_, t)| t.contains("exported"))
        }));
        let exported: Vec<_> = std::fs::read_dir(&reports)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        let [file] = exported.try_into().unwrap();
        let lines: Vec<ferry_policy::audit::AuditRecord> = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines, records);

        env.t.rt.block_on(async {
            c.prod.shutdown().await.unwrap();
            c.qa.shutdown().await.unwrap();
        });
    }
}

mod console_records {
    use std::time::Duration;

    use crossterm::event::KeyCode;
    use ferry_console::app::{Load, View};
    use ferry_policy::audit::{AuditRecord, Outcome};
    use ferry_policy::{Action, AdminKey};

    use super::console::{LIMIT, dev_app, key};
    use super::{Env, policy_doc, start_clusters};

    fn records_until(env: &Env, pred: impl Fn(&[AuditRecord]) -> bool) -> Vec<AuditRecord> {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let (records, _) = ferry_policy::audit::read(&env.t.repo).unwrap();
            if pred(&records) {
                return records;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the audit trail never got there: {records:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A backup from the console goes through the policy and is recorded with its
    /// snapshot; a clone whose plan the user leaves unconfirmed is recorded as abandoned
    /// (its capture read the source).
    #[test]
    fn the_console_records_a_backup_and_an_unconfirmed_clone() {
        let env = Env::new();
        let c = env.t.rt.block_on(start_clusters(&env));
        let admin = AdminKey::generate("admin").unwrap();
        ferry_policy::store::store(&env.t.repo, &policy_doc(&admin.public()), &admin).unwrap();
        let mut app = dev_app(&env);
        key(&mut app, KeyCode::Enter);
        assert_eq!(
            app.screen().view,
            View::Namespaces {
                cluster: "ferry-prod-dev".into()
            }
        );
        assert!(app.settle(LIMIT, |a| matches!(
            a.cluster("ferry-prod-dev").unwrap().namespaces,
            Some(Load::Ready(_))
        )));
        key(&mut app, KeyCode::Char('/'));
        for ch in "shop".chars() {
            key(&mut app, KeyCode::Char(ch));
        }
        key(&mut app, KeyCode::Enter);
        assert_eq!(app.selected_row().unwrap().key, "shop");

        // b: a backup (asked first, naming it), allowed to anyone by rule 5, recorded
        // with its snapshot.
        key(&mut app, KeyCode::Char('b'));
        let ask = app.asking().expect("b asks first");
        assert!(
            ask.question
                .contains("Back up namespace shop of ferry-prod-dev"),
            "{ask:?}"
        );
        key(&mut app, KeyCode::Char('y'));
        let records = records_until(&env, |r| !r.is_empty());
        let [backup] = records.as_slice() else {
            panic!("{records:#?}")
        };
        assert_eq!(backup.action, Action::Backup);
        assert_eq!(backup.outcome, Outcome::Succeeded, "{backup:#?}");
        assert_eq!(backup.rule, Some(5));
        assert_eq!(backup.from.as_deref(), Some("ferry-prod-dev/shop"));
        assert_eq!(backup.identities[0].username, "dev");
        let (snaps, _) = ferry_repo::snapshot::list(&env.t.repo).unwrap();
        assert_eq!(
            backup.snapshot.as_deref(),
            Some(snaps[0].id.to_hex().as_str())
        );

        // c to qa: the plan is built (the capture runs), then esc leaves it unconfirmed.
        key(&mut app, KeyCode::Char(' '));
        key(&mut app, KeyCode::Char('c'));
        assert!(app.settle(LIMIT, |a| {
            a.wizard()
                .unwrap()
                .targets
                .iter()
                .all(|t| t.name != "ferry-qa-dev" || t.denied.is_none())
                && a.wizard().unwrap().targets.len() == 2
        }));
        key(&mut app, KeyCode::Down);
        assert_eq!(app.wizard().unwrap().target_name(), "ferry-qa-dev");
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Enter);
        assert!(app.settle(LIMIT, |a| matches!(
            a.wizard().unwrap().classes_used,
            Load::Ready(_)
        )));
        key(&mut app, KeyCode::Enter);
        key(&mut app, KeyCode::Enter);
        assert!(app.settle(LIMIT, |a| !matches!(
            a.wizard().unwrap().plan,
            Some(Load::Loading) | None
        )));
        assert!(
            matches!(app.wizard().unwrap().plan, Some(Load::Ready(_))),
            "{:?}",
            app.wizard().unwrap().error
        );
        // Leaving the plan asks what becomes of the capture; any key but y keeps it.
        key(&mut app, KeyCode::Esc);
        assert!(
            app.asking()
                .is_some_and(|a| a.question.contains("saved snapshot"))
        );
        key(&mut app, KeyCode::Char('n'));
        let records = records_until(&env, |r| r.len() >= 2);
        let clone = &records[1];
        assert_eq!(clone.action, Action::Clone);
        assert_eq!(clone.outcome, Outcome::Abandoned, "{clone:#?}");
        assert!(clone.allowed);
        assert_eq!(clone.rule, Some(1));
        assert!(
            clone.snapshot.is_some() && clone.plan.is_some(),
            "{clone:#?}"
        );
        assert_eq!(clone.to.as_deref(), Some("ferry-qa-dev/shop-clone"));
        // Nothing reached qa.
        let qa = env.t.rt.block_on(super::client(&env, "ferry-qa"));
        let ns = env.t.rt.block_on(
            kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(qa).get_opt("shop-clone"),
        );
        assert!(ns.unwrap().is_none());

        env.t.rt.block_on(async {
            c.prod.shutdown().await.unwrap();
            c.qa.shutdown().await.unwrap();
        });
    }
}

/// The same refusal in a real terminal: the `ferry` binary in tmux, as the developer
/// (a kubeconfig holding only dev's contexts), migrating qa's shop to prod.
mod terminal {
    use std::time::{Duration, Instant};

    use super::support::tmux::Tmux;
    use super::{Env, client, create_ns, policy_doc, start_clusters, text};

    #[test]
    fn the_console_in_a_terminal_refuses_a_developer_migrating_qa_to_prod() {
        let env = Env::new();
        let c = env.t.rt.block_on(start_clusters(&env));
        env.t.rt.block_on(async {
            create_ns(&client(&env, "ferry-qa").await, "shop").await;
        });
        let (key, public) = env.keygen("admin.key");
        let o = env.set_policy(&policy_doc(&public), &key);
        assert!(o.status.success(), "{}", text(&o));

        // dev's contexts only, as a developer's kubeconfig would hold.
        let mut kc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&env.kubeconfig).unwrap()).unwrap();
        kc["contexts"]
            .as_array_mut()
            .unwrap()
            .retain(|c| c["name"].as_str().unwrap().ends_with("-dev"));
        kc["current-context"] = "ferry-qa-dev".into();
        let dev_kc = env.p("dev-kubeconfig");
        std::fs::write(&dev_kc, serde_json::to_vec(&kc).unwrap()).unwrap();

        let vars = [
            ("HOME", env.p("home").display().to_string()),
            ("XDG_DATA_HOME", env.p("xdg/data").display().to_string()),
            ("XDG_CONFIG_HOME", env.p("xdg/config").display().to_string()),
            ("XDG_STATE_HOME", env.p("xdg/state").display().to_string()),
            ("KUBECONFIG", dev_kc.display().to_string()),
            ("FERRY_REPO", env.t.path().display().to_string()),
            ("FERRY_PASSWORD", "test password".to_string()),
            ("TERM", "xterm-256color".to_string()),
        ];
        let tmux = Tmux::start(env.home.path(), &vars, &super::support::ferry_bin());
        let s = tmux.wait_for("ferry-qa-dev", 60);
        assert!(s.contains("ferry-prod-dev"), "{s}");
        tmux.wait_for("v1.", 60);
        // qa (the second row), its shop namespace, marked, migrate.
        tmux.keys(&["Down", "Enter"]);
        tmux.wait_for("shop", 60);
        tmux.keys(&["/"]);
        tmux.type_text("shop");
        tmux.keys(&["Enter", "Space", "m"]);
        tmux.wait_for("Where should", 30);
        // prod is shown, disabled, with the rule and who could.
        let s = tmux.wait_for("denied by policy", 60);
        assert!(s.contains("ferry-prod-dev  denied by policy"), "{s}");
        // Going on with it is refused in place.
        tmux.keys(&["Enter"]);
        let s = tmux.wait_for("the policy denies ferry-prod-dev", 30);
        assert!(s.contains("rule 2"), "{s}");
        assert!(s.contains("Where should"), "{s}");

        // The attempt is in the audit trail, with dev's identity and the rule.
        let deadline = Instant::now() + Duration::from_secs(60);
        let record = loop {
            let lines = env.ok(&["audit", "--json"]);
            let found = lines
                .lines()
                .filter(|l| l.starts_with('{'))
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|r| r["action"] == "migrate");
            if let Some(r) = found {
                break r;
            }
            assert!(Instant::now() < deadline, "no migrate record:\n{lines}");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(record["outcome"], "denied", "{record}");
        assert_eq!(record["rule"], 2, "{record}");
        assert_eq!(record["to"], "ferry-prod-dev/shop", "{record}");
        assert_eq!(record["identities"][0]["username"], "dev", "{record}");
        // Nothing was captured.
        assert!(
            env.ok(&["snapshots"])
                .lines()
                .all(|l| !l.contains("ferry-qa")),
            "a capture ran"
        );

        // esc closes the wizard, q quits.
        tmux.keys(&["Escape"]);
        tmux.wait_for("wizard closed", 30);
        // The console's own view of the trail shows the attempt.
        tmux.keys(&[":"]);
        tmux.type_text("audit");
        tmux.keys(&["Enter"]);
        let s = tmux.wait_for("denied by policy version 1, rule 2", 30);
        assert!(
            s.contains("migrate") && s.contains("dev@ferry-qa-dev"),
            "{s}"
        );
        tmux.quit();
        drop(tmux);
        env.t.rt.block_on(async {
            c.prod.shutdown().await.unwrap();
            c.qa.shutdown().await.unwrap();
        });
    }
}

//! Policies that follow clusters, not their names (issue 14): the README's example policy,
//! parsed out of README.md, against two sandboxes through the `ferry` binary (`policy
//! check` and the job gate decide alike); kubeconfig contexts renamed to move qa into
//! prod's place; audit records carrying the clusters' identities; and the sandbox's key,
//! token and state files created for their owner only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_providers::kubeconfig::{Linked, Sources};
use ferry_sandbox::{KubeconfigUser, Sandbox, SandboxConfig, write_kubeconfig_with_users};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

struct Env {
    t: common::TestRepo,
    home: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Env {
    fn new() -> Env {
        let home = tempfile::tempdir().unwrap();
        let kubeconfig = home.path().join("kubeconfig");
        Env {
            t: common::new_repo(),
            home,
            kubeconfig,
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(support::ferry_bin())
            .env("XDG_DATA_HOME", self.p("xdg/data"))
            .env("XDG_CONFIG_HOME", self.p("xdg/config"))
            .env("XDG_STATE_HOME", self.p("xdg/state"))
            .env("HOME", self.p("home"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("FERRY_PASSWORD", "test password")
            .env("FERRY_REPO", self.t.path())
            .env_remove("FERRY_PASSWORD_FILE")
            .env_remove("FERRY_KEY_FILE")
            .stdin(Stdio::null())
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "ferry {args:?} failed:\n{}", text(&o));
        text(&o)
    }

    fn keygen(&self) -> (PathBuf, String) {
        let path = self.p("admin.key");
        let out = self.ok(&["policy", "keygen", "--out", path.to_str().unwrap()]);
        let public = out
            .lines()
            .find(|l| l.starts_with("ed25519:"))
            .unwrap()
            .to_string();
        (path, public)
    }

    fn set_policy(&self, doc: &str, key: &Path) -> Output {
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

    fn check(&self, from: &str, to: &str) -> (Option<i32>, String) {
        let o = self.run(&[
            "policy", "check", "--action", "clone", "--from", from, "--to", to,
        ]);
        (o.status.code(), text(&o))
    }

    fn clone(&self, from: &str, to: &str, ns: &str, as_: &str) -> Output {
        self.run(&[
            "clone",
            "--from",
            from,
            "--to",
            to,
            "-n",
            ns,
            "--as",
            as_,
            "--no-volumes",
            "--yes",
        ])
    }

    fn audit(&self) -> Vec<Value> {
        self.ok(&["audit", "--json"])
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The example policy of README.md's "Policies and audit" section.
fn readme_policy() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("## Policies and audit").unwrap()..];
    let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
    let len = section[start..].find("```").unwrap();
    section[start..start + len].to_string()
}

/// (server, ca) from a `ferry policy identify` line `- {server: "…", ca: "…"}`.
fn pin(identify: &str, context: &str) -> (String, String) {
    let at = identify.find(&format!("# {context} ")).unwrap();
    let line = identify[at..]
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("{identify}"));
    let quoted: Vec<&str> = line.split('"').collect();
    assert!(
        line.starts_with("- {server: ") && quoted.len() >= 4,
        "{line}"
    );
    (quoted[1].to_string(), quoted[3].to_string())
}

/// Two sandboxes, prod (with `shop`, one ConfigMap) and qa, each knowing `dev` (group
/// developers, bound to cluster-admin so only the policy stands in the way).
async fn start_clusters(env: &Env) -> (Sandbox, Sandbox) {
    let mut prod = Sandbox::start(SandboxConfig::new("prod", env.p("prod")))
        .await
        .unwrap();
    let mut qa = Sandbox::start(SandboxConfig::new("qa", env.p("qa")))
        .await
        .unwrap();
    let mut users = Vec::new();
    for s in [&mut prod, &mut qa] {
        let token = s.add_user("dev", &["developers".to_string()]).unwrap();
        users.push(KubeconfigUser {
            cluster: s.kubeconfig_entry().cluster,
            user: "dev".into(),
            token,
        });
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
            "metadata": {"name": "developers-admin"},
            "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "developers"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
        }))
        .unwrap();
        Api::<ClusterRoleBinding>::all(admin.clone())
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
        if name == "ferry-prod" {
            let ns: Namespace =
                serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap();
            Api::<Namespace>::all(admin.clone())
                .create(&PostParams::default(), &ns)
                .await
                .unwrap();
            let cm: ConfigMap = serde_json::from_value(
                json!({"metadata": {"name": "settings"}, "data": {"mode": "live"}}),
            )
            .unwrap();
            Api::<ConfigMap>::namespaced(admin, "shop")
                .create(&PostParams::default(), &cm)
                .await
                .unwrap();
        }
    }
    (prod, qa)
}

/// The README's policy with its placeholders filled from `ferry policy identify`.
fn filled_readme_policy(env: &Env, public: &str) -> (String, (String, String), (String, String)) {
    let identify = env.ok(&[
        "policy",
        "identify",
        "--context",
        "ferry-prod",
        "--context",
        "ferry-qa",
    ]);
    let prod = pin(&identify, "ferry-prod");
    let qa = pin(&identify, "ferry-qa");
    assert!(
        prod.1.starts_with("sha256:") && prod.1.len() == 7 + 64,
        "{identify}"
    );
    assert_ne!(prod, qa);
    let doc = readme_policy();
    for placeholder in [
        "ed25519:<the key keygen printed>",
        "<prod server>",
        "<prod CA>",
        "<qa server>",
        "<qa CA>",
    ] {
        assert!(
            doc.contains(placeholder),
            "README example lost {placeholder}: {doc}"
        );
    }
    let doc = doc
        .replace("ed25519:<the key keygen printed>", public)
        .replace("<prod server>", &prod.0)
        .replace("<prod CA>", &prod.1)
        .replace("<qa server>", &qa.0)
        .replace("<qa CA>", &qa.1);
    (doc, prod, qa)
}

#[test]
fn the_readme_policy_refuses_prod_into_qa_namespaces_of_prod_and_qa_into_prod() {
    let env = Env::new();
    let (prod, qa) = env.t.rt.block_on(start_clusters(&env));
    let (key, public) = env.keygen();
    let (doc, prod_id, qa_id) = filled_readme_policy(&env, &public);
    let o = env.set_policy(&doc, &key);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !text(&o).contains("warning:"),
        "a version 2 policy has nothing to warn about: {}",
        text(&o)
    );

    // `policy check`: prod -> qa allowed; prod -> a qa-* namespace of prod, and qa ->
    // prod, denied by the deny into prod (rule 2), which the developers' allow does not
    // outrank.
    let (code, out) = env.check("ferry-prod-dev/shop", "ferry-qa-dev/shop-copy");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("allowed") && out.contains("rule 1 ("), "{out}");
    assert!(out.contains(&prod_id.1[..20]), "no identity shown: {out}");
    let (code, out) = env.check("ferry-prod-dev/shop", "ferry-prod-dev/qa-copy");
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("denied") && out.contains("rule 2 ("), "{out}");
    assert!(out.contains("production changes go through SRE"), "{out}");
    let (code, out) = env.check("ferry-qa-dev/shop", "ferry-prod-dev/shop");
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("rule 2 ("), "{out}");

    // The job gate decides the same way: the same two clones are refused with rule 2
    // before anything is captured; prod -> qa runs.
    for (from, to, as_) in [
        ("ferry-prod-dev", "ferry-prod-dev", "qa-copy"),
        ("ferry-qa-dev", "ferry-prod-dev", "shop-back"),
    ] {
        let o = env.clone(from, to, "shop", as_);
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(out.contains("rule 2: deny * * from * to prod"), "{out}");
        assert!(!out.contains("snapshot"), "captured although denied: {out}");
    }
    let o = env.clone("ferry-prod-dev", "ferry-qa-dev", "shop", "shop-copy");
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rule 1 ("), "{}", text(&o));

    // The audit trail names the clusters by identity, not only by context.
    let records = env.audit();
    let clones: Vec<&Value> = records.iter().filter(|r| r["action"] == "clone").collect();
    assert_eq!(clones.len(), 3, "{records:?}");
    let ok = clones[2];
    assert_eq!(ok["outcome"], "succeeded");
    assert_eq!(ok["from_cluster"]["server"], prod_id.0.as_str());
    assert_eq!(ok["from_cluster"]["ca"][0], prod_id.1.as_str());
    assert_eq!(ok["to_cluster"]["server"], qa_id.0.as_str());
    assert_eq!(ok["to_cluster"]["ca"][0], qa_id.1.as_str());
    let denied = clones[0];
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["to_cluster"]["ca"][0], prod_id.1.as_str());
    let table = env.ok(&["audit"]);
    assert!(
        table.contains(&format!("clusters: {} (CA ", prod_id.0)),
        "{table}"
    );

    // Whole-cluster jobs (`-A`) meet the same environments, which name each cluster
    // whole by its server and CA: qa into prod is refused before anything is read, prod
    // into qa (a clone of every namespace, renamed with a suffix) runs under rule 1.
    let o = env.run(&[
        "migrate",
        "--from",
        "ferry-qa-dev",
        "--to",
        "ferry-prod-dev",
        "-A",
        "--no-volumes",
        "--yes",
    ]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("rule 2: deny * * from * to prod"), "{out}");
    assert!(!out.contains("snapshot"), "captured although denied: {out}");
    let o = env.run(&[
        "clone",
        "--from",
        "ferry-prod-dev",
        "--to",
        "ferry-qa-dev",
        "-A",
        "--namespace-suffix",
        "-whole",
        "--no-volumes",
        "--yes",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rule 1 ("), "{}", text(&o));
    let record = env.audit().pop().unwrap();
    assert_eq!(record["outcome"], "succeeded", "{record}");
    assert_eq!(record["to_cluster"]["ca"][0], qa_id.1.as_str());
    let linked = Linked::load(&Sources {
        paths: vec![env.kubeconfig.clone()],
    });
    let copied = env.t.rt.block_on(async {
        let qa_admin = linked.get("ferry-qa").unwrap().client().await.unwrap();
        Api::<ConfigMap>::namespaced(qa_admin, "shop-whole")
            .get_opt("settings")
            .await
            .unwrap()
    });
    assert!(copied.is_some(), "shop-whole/settings was not cloned");

    env.t.rt.block_on(async {
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

/// Swaps the names of two contexts in the kubeconfig (each keeps its cluster and user).
fn swap_contexts(kubeconfig: &Path, a: &str, b: &str) {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(kubeconfig).unwrap()).unwrap();
    for c in doc["contexts"].as_array_mut().unwrap() {
        let name = c["name"].as_str().unwrap().to_string();
        if name == a {
            c["name"] = b.into();
        } else if name == b {
            c["name"] = a.into();
        }
    }
    std::fs::write(kubeconfig, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
}

#[test]
fn renaming_contexts_moves_no_cluster_into_another_environment() {
    let env = Env::new();
    let (prod, qa) = env.t.rt.block_on(start_clusters(&env));
    let (key, public) = env.keygen();

    // A version 2 policy that names clusters by context alone is refused.
    let o = env.set_policy(
        &format!(
            "version: 2\nadmins: [\"{public}\"]\nenvironments:\n  - name: prod\n    match: [{{context: \"ferry-prod*\"}}]\n"
        ),
        &key,
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("does not pin its clusters")
            && text(&o).contains("ferry policy identify"),
        "{}",
        text(&o)
    );
    // A version 1 policy matching on context names is stored, with a warning that says
    // what it lacks.
    let (v2, prod_id, _) = filled_readme_policy(&env, &public);
    let v1 = format!(
        "version: 1\nadmins: [\"{public}\"]\nenvironments:\n  - name: prod\n    match: [{{context: \"ferry-prod*\"}}]\n  - name: qa\n    match: [{{context: \"ferry-qa*\"}}]\n{}",
        &v2[v2.find("rules:").unwrap()..]
    );
    let o = env.set_policy(&v1, &key);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("warning: environment \"prod\" recognises its clusters by names"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("write `version: 2`"), "{}", text(&o));
    let show = env.ok(&["policy", "show"]);
    assert!(show.contains("warning: environment"), "{show}");

    // The developer swaps the names of the prod and qa contexts: under the version 1
    // policy "prod to qa" by name is qa to prod in fact, and is allowed. That is the
    // hole the warning names.
    swap_contexts(&env.kubeconfig, "ferry-prod-dev", "ferry-qa-dev");
    let (code, out) = env.check("ferry-prod-dev/shop", "ferry-qa-dev/shop-copy");
    assert_eq!(code, Some(0), "{out}");

    // With the version 2 policy the clusters are who their server and CA say: the same
    // request is qa -> prod, refused, and the record carries prod's identity for the
    // target the kubeconfig calls ferry-qa-dev.
    let o = env.set_policy(&v2, &key);
    assert!(o.status.success(), "{}", text(&o));
    let (code, out) = env.check("ferry-prod-dev/shop", "ferry-qa-dev/shop-copy");
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("rule 2 ("), "{out}");
    let o = env.clone("ferry-prod-dev", "ferry-qa-dev", "shop", "shop-copy");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("rule 2: deny * * from * to prod"),
        "{}",
        text(&o)
    );
    let records = env.audit();
    let denied = records.last().unwrap();
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["to"], "ferry-qa-dev/shop-copy");
    assert_eq!(denied["to_cluster"]["ca"][0], prod_id.1.as_str());
    // The clone really went nowhere: prod has no shop-copy.
    let linked = Linked::load(&Sources {
        paths: vec![env.kubeconfig.clone()],
    });
    let exists = env.t.rt.block_on(async {
        let prod_admin = linked.get("ferry-prod").unwrap().client().await.unwrap();
        Api::<Namespace>::all(prod_admin)
            .get_opt("shop-copy")
            .await
            .unwrap()
    });
    assert!(exists.is_none());

    env.t.rt.block_on(async {
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

#[test]
fn sandbox_keys_tokens_and_state_are_created_for_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("one");
    let s = rt
        .block_on(Sandbox::start(SandboxConfig::new("one", folder.clone())))
        .unwrap();
    rt.block_on(s.shutdown()).unwrap();
    for f in ["ca.key", "server.key", "tokens.json", "state.json"] {
        let meta = std::fs::metadata(folder.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{f}");
    }
}

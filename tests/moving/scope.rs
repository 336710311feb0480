//! Whole clusters and scoped jobs, end to end through the `ferry` binary against sandbox
//! clusters: `-A` leaves out system namespaces and `--exclude-namespace` globs; resource
//! types are included or excluded by kind, plural or `plural.group`; several `-l` select
//! what any of them selects; `--include-cluster-resources` takes every cluster-scoped
//! object and a whole-cluster migrate into an empty cluster restores them by their
//! rules; `--namespace-suffix` renames many namespaces at once (checked as DNS labels);
//! a policy denying one namespace refuses a whole-cluster job that would take it; bad
//! choices are refused before anything is read or written.

use std::collections::BTreeSet;

use super::policy::{Env, text};
use ferry_k8s::capture::CaptureMeta;
use ferry_k8s::objects::{self, Catalog, ObjRef};
use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use kube::api::PostParams;
use serde_json::{Value, json};

/// Creates each document on the cluster `client` reaches (any type it serves).
async fn create_all(client: &kube::Client, docs: &[Value]) {
    let mut catalog = Catalog::discover(client).await.unwrap();
    for d in docs {
        let r = ObjRef::of(d);
        if catalog.find(&r.group, &r.kind).is_none() {
            // A custom type whose CRD was created just before.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            catalog = Catalog::discover(client).await.unwrap();
        }
        let res = catalog
            .find(&r.group, &r.kind)
            .unwrap_or_else(|| panic!("{r}"));
        let obj: kube::api::DynamicObject = serde_json::from_value(d.clone()).unwrap();
        objects::api(client, res, r.namespace.as_deref())
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{r}: {e}"));
    }
}

fn ns(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn cm(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}}, "data": {"k": "v"}})
}

fn deploy(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": name, "image": "busybox:1.36"}]}}}})
}

fn hook(name: &str, ns: &str) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{"name": format!("{name}.example.com"), "admissionReviewVersions": ["v1"],
                      "sideEffects": "None", "failurePolicy": "Ignore",
                      "clientConfig": {"service": {"namespace": ns, "name": "hook", "path": "/v"}},
                      "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}]}]})
}

/// What prod holds: three namespaces of its own (plus default and the system ones),
/// workloads, and cluster-scoped objects of several kinds.
fn prod_objects() -> Vec<Value> {
    vec![
        ns("shop"),
        ns("shop-staging"),
        ns("tmp-1"),
        cm("shop", "web-config", "web"),
        cm("shop", "db-config", "db"),
        cm("shop", "other", "other"),
        deploy("shop", "web"),
        cm("shop-staging", "web-config", "web"),
        cm("tmp-1", "scratch", "x"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook", "namespace": "shop"},
               "spec": {"ports": [{"port": 443}], "selector": {"app": "hook"}}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "gateways.example.com"},
               "spec": {"group": "example.com", "scope": "Cluster",
                        "names": {"plural": "gateways", "singular": "gateway", "kind": "Gateway", "listKind": "GatewayList"},
                        "versions": [{"name": "v1", "served": true, "storage": true,
                                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}),
        json!({"apiVersion": "example.com/v1", "kind": "Gateway", "metadata": {"name": "edge"}, "spec": {"port": 443}}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
               "metadata": {"name": "shop-high"}, "value": 100000}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "shop-reader"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
        json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
               "metadata": {"name": "gvisor"}, "handler": "runsc"}),
        hook("shop-hook", "shop"),
        hook("payments-hook", "payments"),
    ]
}

/// The newest capture's record.
fn newest(env: &Env) -> CaptureMeta {
    let (all, _) = ferry_repo::snapshot::list(&env.t.repo).unwrap();
    CaptureMeta::of(all.last().unwrap()).unwrap()
}

fn snapshots(env: &Env) -> usize {
    ferry_repo::snapshot::list(&env.t.repo).unwrap().0.len()
}

/// The documents of the newest capture, as `kind namespace/name`.
fn captured(env: &Env) -> BTreeSet<String> {
    let (all, _) = ferry_repo::snapshot::list(&env.t.repo).unwrap();
    ferry_k8s::capture::read_objects(&env.t.repo, all.last().unwrap())
        .unwrap()
        .iter()
        .map(|o| {
            let r = ObjRef::of(o);
            format!("{} {}/{}", r.kind, r.namespace.unwrap_or_default(), r.name)
        })
        .collect()
}

fn exists(rt: &tokio::runtime::Runtime, client: &kube::Client, doc: &Value) -> bool {
    rt.block_on(async {
        let catalog = Catalog::discover(client).await.unwrap();
        let r = ObjRef::of(doc);
        let Some(res) = catalog.find(&r.group, &r.kind) else {
            return false;
        };
        objects::api(client, res, r.namespace.as_deref())
            .get_opt(&r.name)
            .await
            .unwrap()
            .is_some()
    })
}

#[test]
fn whole_clusters_and_scoped_jobs() {
    let env = Env::new();
    let rt = &env.t.rt;
    let (prod, qa) = rt.block_on(async {
        (
            Sandbox::start(SandboxConfig::new("prod", env.p("prod")))
                .await
                .unwrap(),
            Sandbox::start(SandboxConfig::new("qa", env.p("qa")))
                .await
                .unwrap(),
        )
    });
    write_kubeconfig(
        &env.kubeconfig,
        &[prod.kubeconfig_entry(), qa.kubeconfig_entry()],
    )
    .unwrap();
    let linked = ferry_providers::kubeconfig::Linked::load(&ferry_providers::kubeconfig::Sources {
        paths: vec![env.kubeconfig.clone()],
    });
    let prod_client = rt
        .block_on(linked.get("ferry-prod").unwrap().client())
        .unwrap();
    let qa_client = rt
        .block_on(linked.get("ferry-qa").unwrap().client())
        .unwrap();
    rt.block_on(create_all(&prod_client, &prod_objects()));

    // -A: every namespace but the system ones and the excluded.
    env.ok(&[
        "backup",
        "--context",
        "ferry-prod",
        "-A",
        "--exclude-namespace",
        "tmp-*",
        "--no-volumes",
    ]);
    let meta = newest(&env);
    assert_eq!(meta.namespaces, ["default", "shop", "shop-staging"]);
    let docs = captured(&env);
    assert!(
        docs.contains("ConfigMap shop-staging/web-config"),
        "{docs:?}"
    );
    assert!(!docs.iter().any(|d| d.contains("tmp-1")), "{docs:?}");
    assert!(
        !docs.contains("PriorityClass /shop-high"),
        "cluster objects nobody needs stay without --include-cluster-resources"
    );

    // Resource types by kind, plural or plural.group.
    env.ok(&[
        "backup",
        "--context",
        "ferry-prod",
        "-n",
        "shop",
        "--include-resources",
        "configmaps,Deployment.apps",
        "--exclude-resources",
        "services",
        "--no-volumes",
    ]);
    let docs = captured(&env);
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d.split(' ').next().unwrap()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["ConfigMap", "Deployment", "Namespace"]),
        "{docs:?}"
    );
    assert_eq!(
        newest(&env).resources.include,
        ["configmaps", "Deployment.apps"],
        "the choice is recorded"
    );

    // Several -l: what any of them selects (and what that needs).
    env.ok(&[
        "backup",
        "--context",
        "ferry-prod",
        "-n",
        "shop",
        "-l",
        "app=web",
        "-l",
        "app in (db)",
        "--no-volumes",
    ]);
    let docs = captured(&env);
    assert!(
        docs.contains("ConfigMap shop/web-config") && docs.contains("ConfigMap shop/db-config")
    );
    assert!(!docs.contains("ConfigMap shop/other"), "{docs:?}");

    // Bad choices are refused before anything is read or written.
    let before = snapshots(&env);
    for (args, says) in [
        (
            vec!["-A", "--exclude-namespace", "*"],
            "leaves no namespace of ferry-prod",
        ),
        (vec!["-n", "kube-*"], "--include-system"),
        (vec!["-n", "nope"], "\"nope\" does not exist on ferry-prod"),
        (
            vec!["-n", "shop", "--include-resources", "widgets"],
            "serves no resource type \"widgets\"",
        ),
        (
            vec!["-n", "shop", "--exclude-resources", "*"],
            "leaves no namespaced resource type",
        ),
        (vec!["-n", "shop", "-l", "app in web"], "label selector"),
    ] {
        let mut a = vec!["backup", "--context", "ferry-prod", "--no-volumes"];
        a.extend(args.iter().copied());
        let o = env.run(&a);
        assert!(!o.status.success(), "{a:?} succeeded");
        assert!(text(&o).contains(says), "{a:?}: {}", text(&o));
    }
    assert_eq!(snapshots(&env), before, "nothing written");

    // A whole-cluster migrate into the empty qa: CRDs, cluster objects, then the
    // namespaces; cluster objects by their rules.
    let out = env.ok(&[
        "migrate",
        "--from",
        "ferry-prod",
        "--to",
        "ferry-qa",
        "-A",
        "--exclude-namespace",
        "tmp-*",
        "--include-cluster-resources",
        "--no-volumes",
        "-y",
    ]);
    let objs = prod_objects();
    for (doc, there) in [
        (&objs[0], true),   // shop
        (&objs[1], true),   // shop-staging
        (&objs[2], false),  // tmp-1, excluded
        (&objs[6], true),   // Deployment shop/web
        (&objs[10], true),  // the CRD
        (&objs[11], true),  // its cluster-scoped Gateway
        (&objs[12], true),  // PriorityClass
        (&objs[13], true),  // ClusterRole
        (&objs[14], true),  // RuntimeClass
        (&objs[15], true),  // the webhook whose service comes along
        (&objs[16], false), // the webhook calling a namespace left behind
    ] {
        assert_eq!(
            exists(rt, &qa_client, doc),
            there,
            "{} on qa\n{out}",
            ObjRef::of(doc)
        );
    }
    assert!(
        out.contains("payments/hook"),
        "the plan says why a webhook stays: {out}"
    );
    for line in ["  (cluster-scoped): ", "  shop: ", "  shop-staging: "] {
        assert!(out.contains(line), "reported per namespace: {out}");
    }

    // Many namespaces renamed at once on the same cluster; a name too long is refused.
    env.ok(&[
        "migrate",
        "--from",
        "ferry-prod",
        "--to",
        "ferry-prod",
        "-n",
        "shop*",
        "--namespace-suffix",
        "-qa",
        "--no-volumes",
        "-y",
    ]);
    for n in ["shop-qa", "shop-staging-qa"] {
        assert!(exists(rt, &prod_client, &ns(n)), "{n}");
    }
    assert!(exists(rt, &prod_client, &deploy("shop-qa", "web")));
    // Refused on the same cluster: a name too long, namespaces not renamed, and --as for
    // more than one namespace (several are named by a suffix, a prefix or a map).
    let long = "-".to_string() + &"x".repeat(60);
    for (args, says) in [
        (
            vec!["migrate", "-n", "shop", "--namespace-suffix", &long],
            "is not a valid namespace name",
        ),
        (
            vec!["migrate", "-A"],
            "migrating into the same cluster needs a new name for each namespace",
        ),
        (
            vec!["clone", "-n", "shop*"],
            "cloning into the same cluster needs a new name",
        ),
        (
            vec!["clone", "-A", "--as", "x"],
            "copies one namespace: name it with -n (for several, leave --as out and use --namespace-suffix",
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--from", "ferry-prod", "--no-volumes", "-y"]);
        let o = env.run(&a);
        assert!(!o.status.success(), "{a:?} succeeded");
        assert!(text(&o).contains(says), "{a:?}: {}", text(&o));
    }

    // A policy denying one namespace refuses the whole-cluster job that takes it.
    rt.block_on(create_all(&prod_client, &[ns("vault-keys")]));
    let (key, admin) = env.keygen("admin");
    let policy = format!(
        r#"version: 1
admins: ["{admin}"]
environments:
  - name: vault
    match:
      - context: "ferry-prod*"
        namespace: "vault-*"
  - name: prod
    match:
      - context: "ferry-prod*"
rules:
  - allow: "*"
    subjects: "*"
  - deny: backup
    subjects: "*"
    from: vault
    reason: vault data never leaves the cluster
"#
    );
    let o = env.set_policy(&policy, &key);
    assert!(o.status.success(), "{}", text(&o));
    let before = snapshots(&env);
    let o = env.run(&["backup", "--context", "ferry-prod", "-A", "--no-volumes"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("vault-keys"), "{}", text(&o));
    assert_eq!(snapshots(&env), before);
    env.ok(&[
        "backup",
        "--context",
        "ferry-prod",
        "-A",
        "--exclude-namespace",
        "vault-*",
        "--no-volumes",
    ]);

    rt.block_on(async {
        prod.shutdown().await.unwrap();
        qa.shutdown().await.unwrap();
    });
}

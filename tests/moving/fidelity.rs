//! Copies that stay isolated: a same-cluster clone of realistic manifests (a primary
//! and replicas that find the primary by FQDN, a StatefulSet whose seeds are FQDNs,
//! a token Secret, a Group subject, a completed Job, a claim named by the beta
//! annotation only) points only at itself, and what a clone with `--keep-references`
//! keeps is listed. The manifests go in with the real kubectl (`apply`, so they carry
//! its last-applied configuration).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::migrate::{Clusters, plan_into};
use crate::support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use ferry_k8s::JobProgress;
use ferry_k8s::apply;
use ferry_k8s::capture::{self, CaptureOptions, CaptureOutcome, Scope};
use ferry_k8s::mover::MoverOptions;
use ferry_k8s::plan::{Change, Conflict, PlanOptions};
use ferry_k8s::transform::Mapping;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;
use support::kubectl::kubectl;

/// What a same-cluster copy would share with its source.
const SHARED: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, nodePort: 30080}]
"#;

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {name: shop, team: payments}
---
apiVersion: v1
kind: Service
metadata: {name: redis-headless, namespace: shop}
spec:
  clusterIP: None
  selector: {app: redis}
  ports: [{name: redis, port: 6379}]
---
apiVersion: v1
kind: Service
metadata: {name: redis-master, namespace: shop}
spec:
  selector: {app: redis, role: master}
  ports: [{name: redis, port: 6379}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis-master, namespace: shop}
spec:
  serviceName: redis-headless
  replicas: 1
  selector: {matchLabels: {app: redis, role: master}}
  template:
    metadata: {labels: {app: redis, role: master}}
    spec:
      containers:
      - name: redis
        image: busybox
        command: [sleep, "3600"]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis-replicas, namespace: shop}
spec:
  serviceName: redis-headless
  replicas: 1
  selector: {matchLabels: {app: redis, role: replica}}
  template:
    metadata: {labels: {app: redis, role: replica}}
    spec:
      initContainers:
      - name: wait-for-master
        image: busybox
        command: [sh, -c, "echo waiting for redis-master.shop.svc.cluster.local:6379"]
      containers:
      - name: redis
        image: busybox
        command: [sleep, "3600"]
        args: [--replicaof, redis-master.shop.svc.cluster.local, "6379"]
        env:
        - {name: REDIS_MASTER_HOST, value: redis-master-0.redis-headless.shop.svc.cluster.local}
        - {name: REDIS_URL, value: "redis://redis-master.shop:6379/0"}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        envFrom:
        - secretRef: {name: app-env}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: redis-config, namespace: shop}
data:
  replica.conf: |
    replicaof redis-master.shop.svc.cluster.local 6379
    replica-announce-hostname redis-replicas-0.redis-headless.shop.svc.cluster.local
---
apiVersion: v1
kind: Secret
metadata: {name: app-env, namespace: shop}
stringData:
  DATABASE_URL: "redis://:s3cret@redis-master.shop.svc:6379/1"
---
apiVersion: v1
kind: Service
metadata: {name: cassandra, namespace: shop}
spec:
  clusterIP: None
  selector: {app: cassandra}
  ports: [{name: cql, port: 9042}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cassandra, namespace: shop}
spec:
  serviceName: cassandra
  replicas: 1
  selector: {matchLabels: {app: cassandra}}
  template:
    metadata: {labels: {app: cassandra}}
    spec:
      containers:
      - name: cassandra
        image: busybox
        command: [sleep, "3600"]
        env:
        - {name: CASSANDRA_SEEDS, value: "cassandra-0.cassandra.shop.svc.cluster.local,cassandra-1.cassandra.shop.svc.cluster.local"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ci, namespace: shop}
---
apiVersion: v1
kind: Secret
metadata:
  name: ci-token
  namespace: shop
  annotations: {kubernetes.io/service-account.name: ci}
type: kubernetes.io/service-account-token
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: shop}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {kind: Group, apiGroup: rbac.authorization.k8s.io, name: "system:serviceaccounts:shop"}
- {kind: ServiceAccount, name: ci, namespace: shop}
---
apiVersion: batch/v1
kind: Job
metadata: {name: db-migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: migrate, image: busybox, command: ["true"]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly-report, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: report, image: busybox, command: [sh, -c, "echo report for cassandra.shop.svc"]}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: legacy-data
  namespace: shop
  annotations: {volume.beta.kubernetes.io/storage-class: ebs-sc}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

/// Applies the manifests with kubectl and waits until the Job has completed.
async fn install(env: &Clusters, client: &kube::Client) {
    let file = env.dir.path().join("shop.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    kubectl(
        &env.kubeconfig,
        &[
            "--context",
            "ferry-prod",
            "apply",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), "shop");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = jobs.get("db-migrate").await.unwrap();
        let done = j.status.and_then(|s| s.conditions).is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        });
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the Job did not complete");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn capture_shop(client: &kube::Client, repo: &ferry_repo::Repository) -> CaptureOutcome {
    capture_scope(client, repo, Scope::Namespaces(vec!["shop".into()]), None).await
}

async fn capture_scope(
    client: &kube::Client,
    repo: &ferry_repo::Repository,
    scope: Scope,
    server: Option<String>,
) -> CaptureOutcome {
    capture::capture(
        client,
        repo,
        &CaptureOptions {
            cluster: "ferry-prod".into(),
            scope,
            include_volumes: false,
            use_snapshots: false,
            mover: MoverOptions::default(),
            tags: vec![],
            parent: None,
            no_parent: false,
            envelope: None,
            server,
            resources: Default::default(),
        },
        &JobProgress::new(),
    )
    .await
    .unwrap()
}

fn options(mapping: Mapping) -> PlanOptions {
    PlanOptions {
        mapping,
        conflict: Conflict::Skip,
        include_volumes: false,
        mover: MoverOptions::default(),
        only: None,
        namespaces: vec![],
        modifiers: None,
    }
}

fn clone_as(to: &str) -> Mapping {
    Mapping {
        namespaces: [("shop".to_string(), to.to_string())].into(),
        ..Mapping::default()
    }
}

/// Every object of `ns` of the kinds the manifests use, as JSON, with Secret values
/// decoded.
async fn everything_in(client: &kube::Client, ns: &str) -> Vec<Value> {
    let kinds = [
        ("", "v1", "ConfigMap", "configmaps"),
        ("", "v1", "Secret", "secrets"),
        ("", "v1", "Service", "services"),
        ("", "v1", "Pod", "pods"),
        ("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        ("apps", "v1", "StatefulSet", "statefulsets"),
        ("batch", "v1", "Job", "jobs"),
        ("batch", "v1", "CronJob", "cronjobs"),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
        ),
    ];
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for (group, version, kind, plural) in kinds {
        let ar = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
        for o in api.list(&ListParams::default()).await.unwrap() {
            let mut v = serde_json::to_value(&o).unwrap();
            v["kind"] = Value::String(kind.into());
            if let Some(d) = v["data"].as_object_mut().filter(|_| kind == "Secret") {
                for val in d.values_mut() {
                    if let Some(text) = val
                        .as_str()
                        .and_then(|s| b64.decode(s).ok())
                        .and_then(|b| String::from_utf8(b).ok())
                    {
                        *val = Value::String(text);
                    }
                }
            }
            out.push(v);
        }
    }
    out
}

/// The spellings of the source namespace in these manifests' references.
fn reaches_shop(text: &str) -> Vec<&'static str> {
    [
        ".shop.svc",
        "redis-master.shop:",
        "system:serviceaccounts:shop\"",
        "\"namespace\":\"shop\"",
        "\\\"namespace\\\":\\\"shop\\\"",
    ]
    .into_iter()
    .filter(|n| text.contains(n))
    .collect()
}

#[test]
fn a_same_cluster_clone_points_only_at_itself() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Clusters::start().await;
        let prod = env.client("ferry-prod").await;
        install(&env, &prod).await;
        let source_token = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(prod.clone(), "shop")
            .get("ci-token")
            .await
            .unwrap()
            .data
            .and_then(|d| d.get("token").cloned())
            .expect("the source's token controller filled ci-token");
        let out = capture_shop(&prod, &t.repo).await;

        let mut mapping = clone_as("shop-qa");
        mapping.suspend_cronjobs = true;
        let p = plan_into(&prod, "ferry-prod", &t.repo, &out, &options(mapping)).await;
        let text = p.render_text();
        assert_eq!(p.blocking(), 0, "{text}");
        assert!(p.findings.is_empty(), "nothing points at the source: {text}");
        assert!(text.contains("Isolation: nothing in the copy points at the source."), "{text}");
        // Every rewrite is a line of the plan: field, old -> new.
        for line in [
            "spec.template.spec.containers[redis].env[REDIS_MASTER_HOST].value: redis-master-0.redis-headless.shop.svc.cluster.local -> redis-master-0.redis-headless.shop-qa.svc.cluster.local",
            "spec.template.spec.containers[redis].env[REDIS_URL].value: redis-master.shop -> redis-master.shop-qa",
            "spec.template.spec.containers[redis].args[1]: redis-master.shop.svc.cluster.local -> redis-master.shop-qa.svc.cluster.local",
            "spec.template.spec.initContainers[wait-for-master].command[2]: redis-master.shop.svc.cluster.local -> redis-master.shop-qa.svc.cluster.local",
            "data[replica.conf]: redis-master.shop.svc.cluster.local -> redis-master.shop-qa.svc.cluster.local",
            "data[DATABASE_URL] (secret value): redis-master.shop.svc -> redis-master.shop-qa.svc",
            "env[CASSANDRA_SEEDS].value: cassandra-1.cassandra.shop.svc.cluster.local -> cassandra-1.cassandra.shop-qa.svc.cluster.local",
            "subject system:serviceaccounts:shop -> system:serviceaccounts:shop-qa",
            "token data left out: the target issues its own",
            "suspended (--suspend-cronjobs)",
        ] {
            assert!(text.contains(line), "plan lacks {line:?}:\n{text}");
        }
        let skipped = p
            .items
            .iter()
            .find(|i| i.source.name == "db-migrate")
            .unwrap();
        assert_eq!(skipped.action, Change::Skip);
        assert!(skipped.reason.as_deref().unwrap().contains("--include-completed-jobs"));

        let report = apply::apply(&prod, &t.repo, &p, &MoverOptions::default(), &JobProgress::new())
            .await
            .unwrap();
        assert!(report.failed().is_empty(), "{:#?}", report.failed());
        assert!(report.findings.is_empty(), "{:#?}", report.findings);

        // Read back with our own eyes: nothing in the copy names the source.
        let copy = everything_in(&prod, "shop-qa").await;
        for o in &copy {
            let s = o.to_string();
            let hits = reaches_shop(&s);
            assert!(hits.is_empty(), "{} {} reaches shop through {hits:?}: {s}", o["kind"], o["metadata"]["name"]);
        }
        let find = |kind: &str, name: &str| {
            copy.iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{kind} {name} is not in shop-qa"))
        };
        let replicas = find("StatefulSet", "redis-replicas");
        let c = &replicas["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["env"][0]["value"], "redis-master-0.redis-headless.shop-qa.svc.cluster.local");
        assert_eq!(find("Secret", "app-env")["data"]["DATABASE_URL"], "redis://:s3cret@redis-master.shop-qa.svc:6379/1");
        let applied: Value = serde_json::from_str(
            replicas["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(applied["metadata"]["namespace"], "shop-qa");
        assert_eq!(find("CronJob", "nightly-report")["spec"]["suspend"], true);
        assert!(!copy.iter().any(|o| o["kind"] == "Job" && o["metadata"]["name"] == "db-migrate"), "the completed Job is not run again");
        // The token is the target's own, issued for the copy's account.
        let token = find("Secret", "ci-token");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut token = token.clone();
        while token["data"]["token"].is_null() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            token = serde_json::to_value(
                Api::<k8s_openapi::api::core::v1::Secret>::namespaced(prod.clone(), "shop-qa")
                    .get("ci-token")
                    .await
                    .unwrap(),
            )
            .unwrap();
        }
        let issued = token["data"]["token"].as_str().expect("the target filled the token");
        let source_b64 = base64::engine::general_purpose::STANDARD.encode(&source_token.0);
        assert_ne!(issued, source_b64, "no credential of the source arrives");
        let ns = Api::<k8s_openapi::api::core::v1::Namespace>::all(prod.clone())
            .get("shop-qa")
            .await
            .unwrap();
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(labels["name"], "shop-qa");
        assert_eq!(labels["team"], "payments");
        // The source is as it was.
        let src = everything_in(&prod, "shop").await;
        let orig = src.iter().find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "redis-replicas").unwrap();
        assert_eq!(orig["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "redis-master-0.redis-headless.shop.svc.cluster.local");

        // --keep-references: nothing is rewritten, and every reference is listed.
        let mut keep = clone_as("shop-kept");
        keep.keep_references = true;
        let p = plan_into(&prod, "ferry-prod", &t.repo, &out, &options(keep)).await;
        let text = p.render_text();
        let paths: Vec<String> = p.findings.iter().map(|f| format!("{} {}", f.object.name, f.path)).collect();
        for want in [
            "redis-replicas spec.template.spec.containers[0].env[0].value",
            "redis-replicas spec.template.spec.containers[0].env[1].value",
            "redis-replicas spec.template.spec.containers[0].args[1]",
            "redis-replicas spec.template.spec.initContainers[0].command[2]",
            "redis-config data.replica.conf",
            "app-env data.DATABASE_URL",
            "cassandra spec.template.spec.containers[0].env[0].value",
            "nightly-report spec.jobTemplate.spec.template.spec.containers[0].command[2]",
        ] {
            assert!(paths.iter().any(|p| p == want), "{want} not listed in {paths:#?}\n{text}");
        }
        assert!(text.contains("reference(s) in the copy point at the source"), "{text}");
        assert!(p.findings.iter().all(|f| f.fix.contains("--keep-references")), "{:#?}", p.findings);
        // The restore finds the same in what the target stored (a Secret's values
        // decoded), and nothing it did not plan.
        let report = apply::apply(&prod, &t.repo, &p, &MoverOptions::default(), &JobProgress::new())
            .await
            .unwrap();
        assert!(report.failed().is_empty(), "{:#?}", report.failed());
        let found: Vec<String> = report.findings.iter().map(|f| format!("{} {}", f.object.name, f.path)).collect();
        let mut planned = paths.clone();
        planned.sort();
        let mut sorted = found.clone();
        sorted.sort();
        assert_eq!(sorted, planned, "the restore's findings are the plan's");
        assert!(found.iter().any(|p| p == "app-env data.DATABASE_URL"), "{found:#?}");
        assert!(report.findings.iter().all(|f| f.object.namespace.as_deref() == Some("shop-kept")), "{:#?}", report.findings);

        env.stop().await;
    });
}

#[test]
fn beta_classes_and_mapping_mistakes_are_checked() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let env = Clusters::start().await;
        let prod = env.client("ferry-prod").await;
        let qa = env.client("ferry-qa").await;
        install(&env, &prod).await;
        let shared = env.dir.path().join("shared.yaml");
        std::fs::write(&shared, SHARED).unwrap();
        kubectl(
            &env.kubeconfig,
            &[
                "--context",
                "ferry-prod",
                "apply",
                "-f",
                shared.to_str().unwrap(),
            ],
        );
        let out = capture_shop(&prod, &t.repo).await;

        // A same-cluster copy would serve the source's Ingress host (a finding) and
        // ask for its node port (left to the cluster).
        let p = plan_into(
            &prod,
            "ferry-prod",
            &t.repo,
            &out,
            &options(clone_as("shop-two")),
        )
        .await;
        let text = p.render_text();
        assert_eq!(p.blocking(), 0, "{text}");
        let f: Vec<_> = p
            .findings
            .iter()
            .map(|f| (f.object.name.as_str(), f.path.as_str()))
            .collect();
        assert_eq!(f, [("web", "spec.rules[0].host")], "{text}");
        assert!(
            text.contains(
                "host shop.example.com is already served by Ingress.networking.k8s.io shop/web"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "node port 30080 is held by Service shop/web on the target: left to the target"
            ),
            "{text}"
        );
        let svc = p
            .items
            .iter()
            .find(|i| i.target.kind == "Service" && i.target.name == "web")
            .unwrap();
        assert!(svc.object["spec"]["ports"][0]["nodePort"].is_null());
        // Into another cluster, the chosen node port stays.
        let p = plan_into(&qa, "ferry-qa", &t.repo, &out, &options(Mapping::default())).await;
        let svc = p
            .items
            .iter()
            .find(|i| i.target.kind == "Service" && i.target.name == "web")
            .unwrap();
        assert_eq!(svc.object["spec"]["ports"][0]["nodePort"], 30080);

        // qa has gp2 (default) and gp3: the beta annotation's ebs-sc (type gp3) maps
        // to gp3, and the claim template without a class gets what the source's
        // default (ebs-sc) maps to.
        let p = plan_into(&qa, "ferry-qa", &t.repo, &out, &options(Mapping::default())).await;
        let text = p.render_text();
        assert_eq!(p.blocking(), 0, "{text}");
        assert_eq!(
            p.storage_class_mapping.get("ebs-sc").map(String::as_str),
            Some("gp3"),
            "{text}"
        );
        let claim = p
            .items
            .iter()
            .find(|i| i.target.name == "legacy-data")
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            claim.object["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"],
            "gp3"
        );
        let sts = p
            .items
            .iter()
            .find(|i| i.target.name == "redis-master" && i.target.kind == "StatefulSet")
            .unwrap();
        assert_eq!(
            sts.object["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "gp3",
            "{text}"
        );

        // A class the target lacks, named only by the annotation, blocks the plan.
        let mut m = Mapping::default();
        m.storage_classes.insert("ebs-sc".into(), "io2".into());
        let p = plan_into(&qa, "ferry-qa", &t.repo, &out, &options(m)).await;
        let text = p.render_text();
        assert!(
            p.blocking() > 0
                && text.contains("storage class io2 (for ebs-sc) does not exist on ferry-qa"),
            "{text}"
        );

        // One workload follows the Services its configuration names, and the
        // workloads behind them; the plan says why each came along.
        let scope = Scope::Workloads {
            namespace: "shop".into(),
            workloads: vec!["statefulset/redis-replicas".into()],
        };
        let one = capture_scope(&prod, &t.repo, scope, None).await;
        let p = plan_into(
            &prod,
            "ferry-prod",
            &t.repo,
            &one,
            &options(clone_as("shop-one")),
        )
        .await;
        let text = p.render_text();
        let why = |kind: &str, name: &str| {
            p.items
                .iter()
                .find(|i| i.source.kind == kind && i.source.name == name)
                .unwrap_or_else(|| panic!("{kind} {name} did not come along:\n{text}"))
                .included
                .clone()
                .unwrap_or_default()
        };
        assert!(
            why("Service", "redis-master").contains("names it in containers[redis]"),
            "{text}"
        );
        assert_eq!(
            why("StatefulSet", "redis-master"),
            "behind Service shop/redis-master",
            "{text}"
        );
        assert!(why("Secret", "app-env").contains("uses it"), "{text}");
        assert!(
            why("Service", "redis-headless").contains("uses it"),
            "{text}"
        );
        assert!(
            !p.items.iter().any(|i| i.source.name == "cassandra"),
            "{text}"
        );
        assert!(
            p.findings.is_empty(),
            "every Service it names came along: {text}"
        );
        assert!(
            text.contains("(included: behind Service shop/redis-master)"),
            "{text}"
        );

        // Mapping what the capture does not hold.
        let mut m = clone_as("x");
        m.namespaces.insert("nope".into(), "y".into());
        m.storage_classes.insert("fast".into(), "gp2".into());
        let p = plan_into(&qa, "ferry-qa", &t.repo, &out, &options(m)).await;
        let text = p.render_text();
        let problem = p
            .problems
            .iter()
            .find(|p| p.message.contains("--map-namespace nope="))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            problem.blocking && problem.message.contains("it holds: shop"),
            "{text}"
        );
        let warning = p
            .problems
            .iter()
            .find(|p| p.message.contains("--map-storage-class fast="))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(!warning.blocking, "{text}");

        // A kubeconfig kept in a ConfigMap names the source's API server: a finding
        // in another cluster, its own address in a same-cluster clone.
        let server = env.server("ferry-prod");
        let deployer = env.dir.path().join("deployer.yaml");
        std::fs::write(
            &deployer,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: deployer, namespace: shop}}\n\
                 data:\n  kubeconfig: |\n    clusters:\n    - cluster: {{server: '{server}'}}\n      name: prod\n"
            ),
        )
        .unwrap();
        kubectl(
            &env.kubeconfig,
            &["--context", "ferry-prod", "apply", "-f", deployer.to_str().unwrap()],
        );
        let scope = Scope::Namespaces(vec!["shop".into()]);
        let with_server = capture_scope(&prod, &t.repo, scope, Some(server.clone())).await;
        assert_eq!(with_server.meta.server.as_deref(), Some(server.as_str()));
        let p = plan_into(&qa, "ferry-qa", &t.repo, &with_server, &options(Mapping::default())).await;
        let text = p.render_text();
        let f: Vec<_> = p
            .findings
            .iter()
            .filter(|f| f.message.contains("API server"))
            .map(|f| (f.object.name.as_str(), f.path.as_str()))
            .collect();
        // The kubeconfig, and kubectl's last-applied copy of it.
        assert!(
            f.contains(&("deployer", "data.kubeconfig")) && f.iter().all(|(o, _)| *o == "deployer"),
            "{text}"
        );
        assert!(text.contains(&server), "{text}");
        let p = plan_into(
            &prod,
            "ferry-prod",
            &t.repo,
            &with_server,
            &options(clone_as("shop-three")),
        )
        .await;
        assert!(
            !p.findings.iter().any(|f| f.message.contains("API server")),
            "{:#?}",
            p.findings
        );

        env.stop().await;
    });
}

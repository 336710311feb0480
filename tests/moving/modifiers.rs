//! Velero's resource modifiers through the `ferry` binary: a file a Velero user has
//! changes a claim's storage class and a Deployment's replicas in the plan (each
//! change a line of it) and in what the restore creates; a bad file stops the command
//! before any cluster is asked, naming the rule and its line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::migrate::Clusters;
use crate::support;

use std::path::Path;
use std::process::Output;

use ferry_sandbox::seed::{SeedOptions, seed};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;

/// The claim's rule matches the snapshot's namespace (`shop`), not the one it is
/// restored into, as in Velero.
const MODIFIERS: &str = r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: persistentvolumeclaims
    resourceNameRegex: "^redis-.*$"
    namespaces:
    - shop
  patches:
  - operation: replace
    path: "/spec/storageClassName"
    value: "gp2"
- conditions:
    groupResource: deployments.apps
    matches:
    - path: "/spec/replicas"
      value: "2"
  mergePatches:
  - patchData: |
      spec:
        replicas: 0
"#;

fn ferry(t: &common::TestRepo, c: &Clusters, args: &[&str]) -> Output {
    support::ferry_in(c.dir.path(), &c.kubeconfig, &t.path())
        .args(args)
        .output()
        .unwrap()
}

fn said(o: &Output) -> String {
    support::said(o)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_velero_modifiers_file_changes_a_claim_class_and_replicas_in_the_plan_and_the_restore() {
    let t = common::new_repo();
    t.rt.block_on(async {
        let c = Clusters::start().await;
        let prod = c.client("ferry-prod").await;
        let qa = c.client("ferry-qa").await;
        seed(
            &prod,
            &c.dir.path().join("prod"),
            &SeedOptions {
                files: 2,
                file_size: 4096,
                ..SeedOptions::default()
            },
        )
        .await
        .unwrap();
        let mods = c.dir.path().join("modifiers.yaml");
        std::fs::write(&mods, MODIFIERS).unwrap();
        let bad = c.dir.path().join("bad.yaml");
        std::fs::write(&bad, MODIFIERS.replace("operation: replace", "operation: set")).unwrap();

        let o = ferry(
            &t,
            &c,
            &["backup", "--context", "ferry-prod", "-n", "shop", "--no-volumes", "--quiet"],
        );
        assert!(o.status.success(), "{}", said(&o));

        // A bad file: refused before the (unknown) cluster is even looked up.
        let o = ferry(
            &t,
            &c,
            &["plan", "latest", "--context", "no-such-cluster", "--resource-modifiers", path(&bad)],
        );
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("bad.yaml: resource modifier rule 1 (line 3): patches item 1: unknown operation \"set\""),
            "{err}"
        );

        // A rule that sets a StatefulSet's claim template to a class the target
        // lacks is a blocking problem of the plan, as for a claim.
        let nvme = c.dir.path().join("nvme.yaml");
        std::fs::write(
            &nvme,
            r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: statefulsets.apps
    resourceNameRegex: "^postgres$"
  patches:
  - operation: add
    path: "/spec/volumeClaimTemplates/0/spec/storageClassName"
    value: "fast-nvme"
"#,
        )
        .unwrap();
        let o = ferry(
            &t,
            &c,
            &["plan", "latest", "--context", "ferry-qa", "--map-namespace", "shop=shop-mod", "--resource-modifiers", path(&nvme)],
        );
        let out = said(&o);
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(
            out.contains("set its storage class to fast-nvme, which ferry-qa does not have"),
            "{out}"
        );

        // The plan lists the rules' changes with the object's own.
        let plan_args = [
            "--context",
            "ferry-qa",
            "--map-namespace",
            "shop=shop-mod",
            "--resource-modifiers",
            path(&mods),
        ];
        let mut args = vec!["plan", "latest"];
        args.extend(plan_args);
        let o = ferry(&t, &c, &args);
        let plan = said(&o);
        assert!(o.status.success(), "{plan}");
        let changes_of = |what: &str| -> Vec<String> {
            let mut lines = plan.lines().skip_while(|l| !l.trim_start().ends_with(what)).skip(1);
            let mut out = Vec::new();
            for l in lines.by_ref() {
                match l.trim_start().strip_prefix("~ ") {
                    Some(c) => out.push(c.to_string()),
                    None if l.trim_start().starts_with('(') => {}
                    None => break,
                }
            }
            out
        };
        let claim = changes_of("PersistentVolumeClaim shop-mod/redis-data");
        assert!(
            claim.contains(
                &"resource modifier rule 1 (line 3): replace /spec/storageClassName with \"gp2\"".to_string()
            ),
            "{claim:?}\n{plan}"
        );
        let web = changes_of("Deployment.apps shop-mod/web");
        assert!(
            web.contains(&"resource modifier rule 2 (line 12): replace /spec/replicas with 0".to_string()),
            "{web:?}\n{plan}"
        );
        // The other claim, and a Deployment of 1 replica, are left as they were.
        assert!(
            !changes_of("PersistentVolumeClaim shop-mod/data-postgres-0")
                .iter()
                .any(|c| c.contains("resource modifier")),
            "{plan}"
        );
        assert!(
            !changes_of("Deployment.apps shop-mod/redis")
                .iter()
                .any(|c| c.contains("resource modifier")),
            "{plan}"
        );

        // The restore creates what the plan said.
        let mut args = vec!["restore", "latest", "--no-volume-data", "--yes"];
        args.extend(plan_args);
        let o = ferry(&t, &c, &args);
        assert!(o.status.success(), "{}", said(&o));
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(qa.clone(), "shop-mod");
        let class = |name: &str| {
            let claims = claims.clone();
            let name = name.to_string();
            async move {
                claims
                    .get(&name)
                    .await
                    .unwrap()
                    .spec
                    .unwrap()
                    .storage_class_name
                    .unwrap()
            }
        };
        assert_eq!(class("redis-data").await, "gp2");
        assert_eq!(class("data-postgres-0").await, "gp3");
        let deployments: Api<Deployment> = Api::namespaced(qa.clone(), "shop-mod");
        let replicas = |name: &str| {
            let deployments = deployments.clone();
            let name = name.to_string();
            async move {
                deployments
                    .get(&name)
                    .await
                    .unwrap()
                    .spec
                    .replicas
            }
        };
        assert_eq!(replicas("web").await, Some(0));
        assert_eq!(replicas("redis").await, Some(1));
        c.stop().await;
    });
}

//! Tests of `modifiers.rs`.

use super::*;
use serde_json::json;

fn parse(text: &str) -> Modifiers {
    Modifiers::parse(text, "mods.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    match Modifiers::parse(text, "mods.yaml") {
        Ok(m) => panic!("{text} was read: {m:?}"),
        Err(e) => e.to_string(),
    }
}

/// Applies `m` to `obj` (a resource `gr`), with the object's own namespace and name
/// as the snapshot's.
fn run(m: &Modifiers, obj: &Value, gr: &str) -> Result<(Value, Vec<String>), String> {
    let mut o = obj.clone();
    let source = ObjRef::of(obj);
    m.apply(&mut o, gr, &source)
        .map(|c| (o, c))
        .map_err(|e| e.to_string())
}

fn pvc(ns: &str, name: &str, class: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": name, "namespace": ns, "labels": labels},
               "spec": {"storageClassName": class, "accessModes": ["ReadWriteOnce"]}})
}

fn deployment(ns: &str, name: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
               "spec": {"replicas": replicas, "template": {"spec": {
                   "containers": [{"name": "app", "image": "app:1"}]}}}})
}

// The examples of Velero's documentation (site/content/docs/main/
// restore-resource-modifiers.md), verbatim.

const DOC_TEMPLATE: &str = r#"version: v1
resourceModifierRules:
- conditions:
     groupResource: persistentvolumeclaims
     resourceNameRegex: "^mysql.*$"
     namespaces:
     - bar
     - foo
     labelSelector:
        matchLabels:
           foo: bar
  patches:
  - operation: replace
    path: "/spec/storageClassName"
    value: "premium"
  - operation: remove
    path: "/metadata/labels/test"
"#;

/// The ConfigMap Velero reads the rules from, as `kubectl get cm -o yaml` prints it.
#[test]
fn the_configmap_velero_reads_is_read_as_its_one_data_key() {
    let indented: String = DOC_TEMPLATE.lines().map(|l| format!("    {l}\n")).collect();
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: resource-modifier-cm\n  namespace: velero\n  resourceVersion: \"4242\"\ndata:\n  resource-modifier.yaml: |\n{indented}"
    );
    let m = Modifiers::parse(&cm, "cm.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.len(), 1);
    assert_eq!(m.file(), "cm.yaml (data key resource-modifier.yaml)");
    let labels = json!({"foo": "bar", "test": "x"});
    let claim = pvc("foo", "mysql-data", "standard", labels);
    let (got, _) = run(&m, &claim, "persistentvolumeclaims").unwrap();
    assert_eq!(got["spec"]["storageClassName"], "premium");
}

#[test]
fn the_documented_template_changes_the_class_of_matching_claims() {
    let m = parse(DOC_TEMPLATE);
    let claim = pvc(
        "foo",
        "mysql-data",
        "standard",
        json!({"foo": "bar", "test": "x"}),
    );
    let (got, said) = run(&m, &claim, "persistentvolumeclaims").unwrap();
    assert_eq!(got["spec"]["storageClassName"], "premium");
    assert_eq!(got["metadata"]["labels"], json!({"foo": "bar"}));
    assert_eq!(
        said,
        [
            "resource modifier rule 1 (line 3): replace /spec/storageClassName with \"premium\"",
            "resource modifier rule 1 (line 3): remove /metadata/labels/test",
        ]
    );
    // Another namespace, another name, other labels, another resource: untouched.
    for (other, gr) in [
        (
            pvc(
                "baz",
                "mysql-data",
                "standard",
                json!({"foo": "bar", "test": "x"}),
            ),
            "persistentvolumeclaims",
        ),
        (
            pvc(
                "foo",
                "data-mysql",
                "standard",
                json!({"foo": "bar", "test": "x"}),
            ),
            "persistentvolumeclaims",
        ),
        (
            pvc(
                "foo",
                "mysql-data",
                "standard",
                json!({"foo": "baz", "test": "x"}),
            ),
            "persistentvolumeclaims",
        ),
        (
            pvc(
                "foo",
                "mysql-data",
                "standard",
                json!({"foo": "bar", "test": "x"}),
            ),
            "persistentvolumes",
        ),
    ] {
        let (got, said) = run(&m, &other, gr).unwrap();
        assert_eq!(got, other);
        assert!(said.is_empty(), "{said:?}");
    }
    // A claim that matches but has no label `test`: the removal cannot be done.
    let bare = pvc("foo", "mysql-0", "standard", json!({"foo": "bar"}));
    assert_eq!(
        run(&m, &bare, "persistentvolumeclaims").unwrap_err(),
        "resource modifier rule 1 (line 3) of mods.yaml cannot change PersistentVolumeClaim foo/mysql-0: \
             cannot remove /metadata/labels/test: /metadata/labels/test does not exist. Fix the rule's path, \
             or narrow its conditions (matches, or a test operation first) to the objects that have it"
    );
}

#[test]
fn the_documented_test_operation_stops_the_rule() {
    let m = parse(
        r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: persistentvolumeclaims
    resourceNameRegex: ".*"
    namespaces:
    - bar
    - foo
  patches:
  - operation: test
    path: "/spec/storageClassName"
    value: "premium"
  - operation: replace
    path: "/spec/storageClassName"
    value: "standard"
"#,
    );
    let premium = pvc("bar", "db", "premium", json!({}));
    let (got, said) = run(&m, &premium, "persistentvolumeclaims").unwrap();
    assert_eq!(got["spec"]["storageClassName"], "standard");
    assert_eq!(
        said,
        ["resource modifier rule 1 (line 3): replace /spec/storageClassName with \"standard\""]
    );
    let gp2 = pvc("bar", "db", "gp2", json!({}));
    assert_eq!(
        run(&m, &gp2, "persistentvolumeclaims").unwrap(),
        (gp2, vec![])
    );
}

#[test]
fn the_documented_json_value_and_copy() {
    let m = parse(
        r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    resourceNameRegex: "^test-.*$"
    namespaces:
    - bar
    - foo
  patches:
    # Dealing with complex values by escaping the yaml
  - operation: add
    path: "/spec/template/spec/containers/0"
    value: "{\"name\": \"nginx\", \"image\": \"nginx:1.14.2\", \"ports\": [{\"containerPort\": 80}]}"
    # Copy Operator
  - operation: copy
    from: "/spec/template/spec/containers/0"
    path: "/spec/template/spec/containers/1"
"#,
    );
    let (got, said) = run(&m, &deployment("foo", "test-web", 1), "deployments.apps").unwrap();
    let nginx = json!({"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]});
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"],
        json!([nginx, nginx, {"name": "app", "image": "app:1"}])
    );
    assert_eq!(
        said,
        [
            "resource modifier rule 1 (line 3): add {\"image\":\"nginx:1.14.2\",\"name\":\"nginx\",\"ports\":[{\"containerPort\":80}]} at /spec/template/spec/containers/0",
            "resource modifier rule 1 (line 3): copy /spec/template/spec/containers/0 to /spec/template/spec/containers/1",
        ]
    );
    let other = deployment("foo", "web", 1);
    assert_eq!(run(&m, &other, "deployments.apps").unwrap().0, other);
}

#[test]
fn the_documented_merge_patch_removes_an_annotation() {
    let m = parse(
        r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: pods
    namespaces:
    - ns1
  mergePatches:
  - patchData: |
      {
        "metadata": {
          "annotations": {
            "foo": null
          }
        }
      }
"#,
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns1", "annotations": {"foo": "1", "bar": "2"}}});
    let (got, said) = run(&m, &pod, "pods").unwrap();
    assert_eq!(got["metadata"]["annotations"], json!({"bar": "2"}));
    assert_eq!(
        said,
        ["resource modifier rule 1 (line 3): remove /metadata/annotations/foo"]
    );
    // Nothing to remove: nothing changes, nothing is said.
    let (got, said) = run(&m, &got, "pods").unwrap();
    assert_eq!(got["metadata"]["annotations"], json!({"bar": "2"}));
    assert!(said.is_empty());
}

#[test]
fn the_documented_strategic_patch_replaces_a_container_image() {
    let m = parse(
        r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: pods
    resourceNameRegex: "^my-pod$"
    namespaces:
    - ns1
  strategicPatches:
  - patchData: |
      {
        "spec": {
          "containers": [
            {
              "name": "nginx",
              "image": "repo2/nginx"
            }
          ]
        }
      }
"#,
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "my-pod", "namespace": "ns1"},
            "spec": {"containers": [{"name": "sidecar", "image": "envoy"}, {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]}});
    let (got, said) = run(&m, &pod, "pods").unwrap();
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "sidecar", "image": "envoy"}, {"name": "nginx", "image": "repo2/nginx", "ports": [{"containerPort": 80}]}])
    );
    assert_eq!(
        said,
        [
            "resource modifier rule 1 (line 3): replace /spec/containers/1/image with \"repo2/nginx\""
        ]
    );
    // A merge patch would have replaced the whole list.
    let mut other = pod.clone();
    other["metadata"]["name"] = json!("my-pod-2");
    assert_eq!(run(&m, &other, "pods").unwrap().0, other);
}

#[test]
fn the_documented_matches_example_names_a_resource_no_claim_is() {
    // Velero's example says persistentvolumeclaims.storage.k8s.io, but claims are
    // core resources (`persistentvolumeclaims`): Velero matches none, nor does Ferry.
    let doc = r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: persistentvolumeclaims.storage.k8s.io
    matches:
    - path: "/spec/storageClassName"
      value: "premium"
  mergePatches:
  - patchData: |
      {
        "metadata": {
          "annotations": {
            "foo": null
          }
        }
      }
"#;
    let mut claim = pvc("a", "db", "premium", json!({}));
    claim["metadata"]["annotations"] = json!({"foo": "x"});
    assert!(
        run(&parse(doc), &claim, "persistentvolumeclaims")
            .unwrap()
            .1
            .is_empty()
    );
    let fixed = parse(&doc.replace(".storage.k8s.io", ""));
    let (got, _) = run(&fixed, &claim, "persistentvolumeclaims").unwrap();
    assert_eq!(got["metadata"]["annotations"], json!({}));
    let standard = pvc("a", "db", "standard", json!({}));
    assert!(
        run(&fixed, &standard, "persistentvolumeclaims")
            .unwrap()
            .1
            .is_empty()
    );
}

#[test]
fn matches_compare_values_as_velero_reads_them() {
    let m = parse(
        r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    matches:
    - path: /spec/replicas
      value: "3"
  patches:
  - operation: replace
    path: /spec/replicas
    value: "0"
"#,
    );
    let (got, said) = run(&m, &deployment("shop", "web", 3), "deployments.apps").unwrap();
    assert_eq!(got["spec"]["replicas"], json!(0));
    assert_eq!(
        said,
        ["resource modifier rule 1 (line 3): replace /spec/replicas with 0"]
    );
    assert!(
        run(&m, &deployment("shop", "web", 2), "deployments.apps")
            .unwrap()
            .1
            .is_empty()
    );
    let mut bare = deployment("shop", "web", 3);
    bare["spec"] = json!({});
    assert!(run(&m, &bare, "deployments.apps").unwrap().1.is_empty());
}

#[test]
fn velero_values_from_text() {
    let v = |s: &str| velero_value(Some(&json!(s))).unwrap();
    assert_eq!(v("premium"), json!("premium"));
    assert_eq!(v("3"), json!(3));
    assert_eq!(v("2.5"), json!(2.5));
    assert_eq!(v("true"), json!(true));
    assert_eq!(v("False"), json!(false));
    assert_eq!(v("null"), Value::Null);
    assert_eq!(v("\"true\""), json!("true"));
    assert_eq!(v("\"3\""), json!("3"));
    assert_eq!(v("[1, \"a\"]"), json!([1, "a"]));
    assert_eq!(v("{\"a\": {}}"), json!({"a": {}}));
    assert_eq!(v(" 3"), json!(" 3"));
    assert_eq!(velero_value(None).unwrap(), json!(""));
    assert_eq!(velero_value(Some(&json!(2.0))).unwrap(), json!(2));
    assert_eq!(velero_value(Some(&json!(false))).unwrap(), json!(false));
    assert!(
        velero_value(Some(&json!("{not json")))
            .unwrap_err()
            .contains("quote it")
    );
}

#[test]
fn label_selector_expressions() {
    let m = parse(
        r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: "*.apps"
    labelSelector:
      matchLabels:
        tier: web
      matchExpressions:
      - key: env
        operator: In
        values: [prod, staging]
      - key: canary
        operator: DoesNotExist
      - key: team
        operator: NotIn
        values: [search]
      - key: app
        operator: Exists
  mergePatches:
  - patchData: |
      spec:
        replicas: 1
"#,
    );
    let with = |labels: Value| {
        let mut d = deployment("shop", "web", 3);
        d["metadata"]["labels"] = labels;
        run(&m, &d, "deployments.apps").unwrap().0["spec"]["replicas"] == json!(1)
    };
    assert!(with(json!({"app": "web", "tier": "web", "env": "prod"})));
    assert!(with(
        json!({"app": "web", "tier": "web", "env": "staging", "team": "shop"})
    ));
    assert!(!with(json!({"app": "web", "tier": "web", "env": "dev"})));
    assert!(!with(json!({"app": "web", "tier": "web"})));
    assert!(!with(
        json!({"app": "web", "tier": "web", "env": "prod", "canary": ""})
    ));
    assert!(!with(
        json!({"app": "web", "tier": "web", "env": "prod", "team": "search"})
    ));
    assert!(!with(json!({"tier": "web", "env": "prod"})));
    assert!(!with(json!({"app": "web", "tier": "db", "env": "prod"})));
}

#[test]
fn group_resource_globs_stop_at_dots_as_velero_s_do() {
    let rule = |gr: &str| {
        parse(&format!(
            "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: {gr:?}\n  mergePatches:\n  - patchData: 'metadata: {{labels: {{x: y}}}}'\n"
        ))
    };
    let hits = |gr: &str, resource: &str| {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}});
        !run(&rule(gr), &cm, resource).unwrap().1.is_empty()
    };
    assert!(hits("*", "configmaps"));
    assert!(!hits("*", "deployments.apps"));
    assert!(hits("*.apps", "deployments.apps"));
    assert!(!hits("*.apps", "ingresses.networking.k8s.io"));
    assert!(hits("*.*", "deployments.apps"));
    assert!(!hits("*.*", "ingresses.networking.k8s.io"));
    assert!(hits("**", "ingresses.networking.k8s.io"));
    assert!(hits("**", "pods"));
    assert!(hits("{deployments,statefulsets}.apps", "statefulsets.apps"));
    assert!(hits("deployment?.apps", "deployments.apps"));
    assert!(hits("[cd]*s", "configmaps"));
    assert!(!hits("[!c]*", "configmaps"));
    assert!(hits("Pods", "Pods"));
    assert!(!hits("pods", "podsx"));
}

#[test]
fn namespaces_are_those_of_the_snapshot_and_globs() {
    let m = parse(
        "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: deployments.apps\n    namespaces: [shop, 'team-*']\n  patches:\n  - {operation: replace, path: /spec/replicas, value: '0'}\n",
    );
    // The object already moved to shop-qa (--map-namespace); the rule names shop.
    let mut moved = deployment("shop-qa", "web", 2);
    let source = ObjRef::of(&deployment("shop", "web", 2));
    let said = m.apply(&mut moved, "deployments.apps", &source).unwrap();
    assert_eq!(moved["spec"]["replicas"], json!(0), "{said:?}");
    assert_eq!(
        said,
        ["resource modifier rule 1 (line 3): replace /spec/replicas with 0"]
    );
    assert!(
        !run(&m, &deployment("team-a", "web", 2), "deployments.apps")
            .unwrap()
            .1
            .is_empty()
    );
    assert!(
        run(&m, &deployment("shop-qa", "web", 2), "deployments.apps")
            .unwrap()
            .1
            .is_empty()
    );
    // Cluster-scoped objects pass the namespace condition.
    let m = parse(
        "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: clusterroles.rbac.authorization.k8s.io\n    namespaces: [shop]\n  mergePatches:\n  - patchData: '{\"metadata\": {\"labels\": {\"copied\": \"yes\"}}}'\n",
    );
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}});
    let (got, said) = run(&m, &role, "clusterroles.rbac.authorization.k8s.io").unwrap();
    assert_eq!(got["metadata"]["labels"], json!({"copied": "yes"}));
    assert_eq!(
        said,
        ["resource modifier rule 1 (line 3): add {\"copied\":\"yes\"} at /metadata/labels"]
    );
}

#[test]
fn every_rule_looks_at_the_object_as_it_was_and_they_apply_in_order() {
    let m = parse(
        r#"version: v1
resourceModifierRules:
- conditions:
    groupResource: deployments.apps
    labelSelector: {matchLabels: {app: web}}
  mergePatches:
  - patchData: "metadata: {labels: {app: site}}"
- conditions:
    groupResource: deployments.apps
    labelSelector: {matchLabels: {app: web}}
  patches:
  - operation: add
    path: /metadata/labels/seen
    value: web
- conditions:
    groupResource: deployments.apps
    labelSelector: {matchLabels: {app: site}}
  patches:
  - operation: add
    path: /metadata/labels/never
    value: "1"
"#,
    );
    let (got, said) = run(&m, &deployment("shop", "web", 1), "deployments.apps").unwrap();
    assert_eq!(
        got["metadata"]["labels"],
        json!({"app": "site", "seen": "web"})
    );
    assert_eq!(
        said,
        [
            "resource modifier rule 1 (line 3): replace /metadata/labels/app with \"site\"",
            "resource modifier rule 2 (line 8): add \"web\" at /metadata/labels/seen",
        ]
    );
}

#[test]
fn strategic_patches_are_refused_on_custom_resources() {
    let m = parse(
        "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: '**'\n  strategicPatches:\n  - patchData: 'spec: {size: 2}'\n",
    );
    let db = json!({"apiVersion": "example.com/v1", "kind": "Database", "metadata": {"name": "d", "namespace": "a"}, "spec": {"size": 1}});
    let e = run(&m, &db, "databases.example.com").unwrap_err();
    assert!(e.starts_with("resource modifier rule 1 (line 3) of mods.yaml cannot change Database.example.com a/d: a strategic merge patch needs"), "{e}");
    assert!(e.contains("use mergePatches"), "{e}");
    let (got, _) = run(&m, &deployment("a", "w", 1), "deployments.apps").unwrap();
    assert_eq!(got["spec"]["size"], json!(2));
}

#[test]
fn json_files_are_read_too() {
    let m = parse(
        r#"{"version": "v1", "resourceModifierRules": [
  {"conditions": {"groupResource": "deployments.apps"},
   "patches": [{"operation": "replace", "path": "/spec/replicas", "value": "0"}]}]}"#,
    );
    let (got, said) = run(&m, &deployment("a", "w", 3), "deployments.apps").unwrap();
    assert_eq!(got["spec"]["replicas"], json!(0));
    assert_eq!(
        said,
        ["resource modifier rule 1 (line 2): replace /spec/replicas with 0"]
    );
}

#[test]
fn a_bad_file_is_refused_naming_the_rule_and_its_line() {
    let rules = |body: &str| {
        format!(
            "version: v1\nresourceModifierRules:\n- conditions:\n    groupResource: pods\n  patches:\n  - {{operation: remove, path: /a}}\n{body}"
        )
    };
    for (text, says) in [
        (
            "version: v2\nresourceModifierRules: []\n".to_string(),
            "mods.yaml: version \"v2\" is not one Ferry reads: resource modifiers files are `version: v1`",
        ),
        (
            "resourceModifierRules: []\n".to_string(),
            "mods.yaml: it has no version: resource modifiers files start with `version: v1`",
        ),
        (
            "version: v1\n".to_string(),
            "mods.yaml: it has no rules: list them under resourceModifierRules",
        ),
        (
            "version: v1\nresourceModifierRule:\n- {}\n".to_string(),
            "mods.yaml: line 2 column 1: unknown field `resourceModifierRule`, expected one of version, resourceModifierRules",
        ),
        (
            "version: [v1\n".to_string(),
            "mods.yaml: line 1 column 10: unclosed bracket '['",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\n".to_string(),
            "mods.yaml: this ConfigMap has no data",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  a.yaml: 'version: v1'\n  b.yaml: x\n".to_string(),
            "this ConfigMap has several data keys",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  m.yaml: |\n    version: v1\n    resourceModifierRules:\n    - patches: []\n".to_string(),
            "mods.yaml (data key m.yaml): resource modifier rule 1 (line 3): it has no conditions",
        ),
        (
            "apiVersion: v1\nkind: Secret\n".to_string(),
            "this looks like a Kubernetes object (a ConfigMap?)",
        ),
        (
            rules("- patches:\n  - {operation: remove, path: /a}\n"),
            "mods.yaml: resource modifier rule 2 (line 7): it has no conditions: add conditions with at least a groupResource",
        ),
        (
            rules(
                "- conditions:\n    namespaces: [a]\n  patches:\n  - {operation: remove, path: /a}\n",
            ),
            "mods.yaml: resource modifier rule 2 (line 7): its conditions have no groupResource",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n    resourceNameRegex: 'web-(\\d+'\n  patches:\n  - {operation: remove, path: /a}\n",
            ),
            "mods.yaml: resource modifier rule 2 (line 7): resourceNameRegex \"web-(\\\\d+\" is not a regular expression",
        ),
        (
            rules(
                "- conditions:\n    groupResource: 'pods{'\n  patches:\n  - {operation: remove, path: /a}\n",
            ),
            "rule 2 (line 7): groupResource \"pods{\" is not a pattern Ferry can read: a { is not closed",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n    labelSelector:\n      matchExpressions:\n      - {key: app, operator: in, values: [a]}\n  patches:\n  - {operation: remove, path: /a}\n",
            ),
            "rule 2 (line 7): labelSelector: operator \"in\" of app is not one of In, NotIn, Exists, DoesNotExist",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n    labelSelector:\n      matchExpressions:\n      - {key: app, operator: In}\n  patches:\n  - {operation: remove, path: /a}\n",
            ),
            "rule 2 (line 7): labelSelector: app In needs values",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n  patches:\n  - {operation: delete, path: /a}\n",
            ),
            "rule 2 (line 7): patches item 1: unknown operation \"delete\": use add, remove, replace, move, copy or test",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n  patches:\n  - {operation: remove, path: /a}\n  - {operation: replace, path: spec/replicas, value: '1'}\n",
            ),
            "rule 2 (line 7): patches item 2: \"spec/replicas\" is not a JSON pointer: it must start with /",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n  patches:\n  - {operation: move, path: /a}\n",
            ),
            "rule 2 (line 7): patches item 1: move /a has no `from`",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n    matches:\n    - {value: x}\n  patches:\n  - {operation: remove, path: /a}\n",
            ),
            "rule 2 (line 7): matches item 1 has no path",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n  mergePatches:\n  - patchData: '- a'\n",
            ),
            "rule 2 (line 7): mergePatches item 1: patchData must be a map of the fields to change",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n  strategicPatches:\n  - patchData: 'a: [b'\n",
            ),
            "rule 2 (line 7): strategicPatches item 1: patchData is not YAML, at its line 1 column 4: unclosed bracket '['",
        ),
        (
            rules("- conditions:\n    groupResource: pods\n"),
            "rule 2 (line 7): it has no patches: add patches (JSON patch), mergePatches or strategicPatches",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n  patches:\n  - {operation: remove, path: /a}\n  mergePatches:\n  - patchData: 'a: b'\n",
            ),
            "rule 2 (line 7): it has more than one of patches, mergePatches and strategicPatches",
        ),
        (
            rules(
                "- conditions:\n    groupResource: pods\n  patch:\n  - {operation: remove, path: /a}\n",
            ),
            "rule 2 (line 7): unknown field `patch`, expected one of `conditions`, `patches`, `mergePatches`, `strategicPatches`",
        ),
    ] {
        let e = error(&text);
        assert!(e.contains(says), "{text}\n said: {e}\n want: {says}");
    }
}

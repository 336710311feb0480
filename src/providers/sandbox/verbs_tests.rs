//! Unit tests of `verbs.rs`: metadata, names, namespaces, owner references.

use super::*;

fn cluster() -> Cluster {
    Cluster::for_tests()
}

#[test]
fn new_pods_are_pending_with_their_qos_class() {
    let mut c = cluster();
    let pods = c.info("", "v1", "pods").unwrap();
    let pod = |name: &str, resources: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]},
               "status": {"phase": "Running"}})
    };
    for (name, resources, qos) in [
        ("none", json!({}), "BestEffort"),
        ("some", json!({"requests": {"cpu": "100m"}}), "Burstable"),
        (
            "exact",
            json!({"limits": {"cpu": "1", "memory": "1Gi"}}),
            "Guaranteed",
        ),
        (
            "uneven",
            json!({"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}),
            "Burstable",
        ),
    ] {
        let out = c
            .create(&pods, Some("default"), pod(name, resources))
            .unwrap();
        assert_eq!(out["status"]["phase"], "Pending", "{name}");
        assert_eq!(out["status"]["qosClass"], qos, "{name}");
    }
}

#[test]
fn bootstrap_creates_namespaces_service_account_and_node() {
    let c = cluster();
    let sa = c.info("", "v1", "serviceaccounts").unwrap();
    assert!(
        c.get(&sa, Some("kube-system"), "default", Sub::Main)
            .is_ok()
    );
    let svc = c.info("", "v1", "services").unwrap();
    let k = c
        .get(&svc, Some("default"), "kubernetes", Sub::Main)
        .unwrap();
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    let nodes = c.info("", "v1", "nodes").unwrap();
    let list = c.list(&nodes, None, &ListQuery::default()).unwrap();
    assert!(list["items"][0]["metadata"]["labels"]["topology.kubernetes.io/zone"].is_string());
}

#[test]
fn names_are_checked() {
    let mut c = cluster();
    let cm = c.info("", "v1", "configmaps").unwrap();
    for bad in ["Bad", "a_b", "-a", "a..b"] {
        let e = c
            .create(&cm, Some("default"), json!({"metadata": {"name": bad}}))
            .unwrap_err();
        assert_eq!(e.code, 422, "{bad}");
    }
    let e = c
        .create(&cm, Some("default"), json!({"metadata": {}}))
        .unwrap_err();
    assert_eq!(e.code, 422);
    let e = c
        .create(&cm, Some("nope"), json!({"metadata": {"name": "a"}}))
        .unwrap_err();
    assert_eq!(e.code, 404);
    let ok = c
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"generateName": "x-"}}),
        )
        .unwrap();
    assert!(ok["metadata"]["name"].as_str().unwrap().starts_with("x-"));
}

#[test]
fn owner_references_and_namespace_deletion() {
    let mut c = cluster();
    let ns = c.info("", "v1", "namespaces").unwrap();
    c.create(&ns, None, json!({"metadata": {"name": "app"}}))
        .unwrap();
    let cm = c.info("", "v1", "configmaps").unwrap();
    let owner = c
        .create(&cm, Some("app"), json!({"metadata": {"name": "owner"}}))
        .unwrap();
    let uid = owner["metadata"]["uid"].clone();
    c.create(
        &cm,
        Some("app"),
        json!({"metadata": {"name": "dep", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}),
    )
    .unwrap();
    c.delete(&cm, Some("app"), "owner", &DeleteOptions::default())
        .unwrap();
    assert_eq!(
        c.get(&cm, Some("app"), "dep", Sub::Main).unwrap_err().code,
        404
    );
    c.create(&cm, Some("app"), json!({"metadata": {"name": "x"}}))
        .unwrap();
    c.delete(&ns, None, "app", &DeleteOptions::default())
        .unwrap();
    assert_eq!(c.get(&ns, None, "app", Sub::Main).unwrap_err().code, 404);
    assert_eq!(
        c.get(&cm, Some("app"), "x", Sub::Main).unwrap_err().code,
        404
    );
}

#[test]
fn namespaces_with_finalizers_wait_for_them_and_for_their_contents() {
    let mut c = cluster();
    let ns = c.info("", "v1", "namespaces").unwrap();
    let cm = c.info("", "v1", "configmaps").unwrap();
    c.create(
        &ns,
        None,
        json!({"metadata": {"name": "held", "finalizers": ["x/y"]}}),
    )
    .unwrap();
    c.create(
        &cm,
        Some("held"),
        json!({"metadata": {"name": "a", "finalizers": ["x/y"]}}),
    )
    .unwrap();
    c.delete(&ns, None, "held", &DeleteOptions::default())
        .unwrap();
    let n = c.get(&ns, None, "held", Sub::Main).unwrap();
    assert_eq!(n["status"]["phase"], "Terminating");
    let e = c
        .create(&cm, Some("held"), json!({"metadata": {"name": "new"}}))
        .unwrap_err();
    assert_eq!(e.code, 403);
    // The config map waits for its finalizer; releasing it leaves the namespace held
    // by its own finalizer, and releasing that removes the namespace.
    c.patch(
        &cm,
        Some("held"),
        "a",
        Sub::Main,
        "application/merge-patch+json",
        br#"{"metadata":{"finalizers":null}}"#,
    )
    .unwrap();
    assert_eq!(
        c.get(&cm, Some("held"), "a", Sub::Main).unwrap_err().code,
        404
    );
    assert!(c.get(&ns, None, "held", Sub::Main).is_ok());
    c.patch(
        &ns,
        None,
        "held",
        Sub::Main,
        "application/merge-patch+json",
        br#"{"metadata":{"finalizers":null}}"#,
    )
    .unwrap();
    assert_eq!(c.get(&ns, None, "held", Sub::Main).unwrap_err().code, 404);
}

//! The sandbox as a Kubernetes client sees it: an in-process sandbox on 127.0.0.1:0,
//! reached through the kubeconfig it writes, with kube-rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config};
use serde_json::json;

struct Env {
    sandbox: Sandbox,
    client: Client,
}

async fn client_for(dir: &Path, sandbox: &Sandbox) -> Client {
    let path = dir.join("kubeconfig");
    write_kubeconfig(&path, &[sandbox.kubeconfig_entry()]).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

async fn start(dir: &Path) -> Env {
    let sandbox = Sandbox::start(SandboxConfig::new("test", dir.join("state")))
        .await
        .unwrap();
    let client = client_for(dir, &sandbox).await;
    Env { sandbox, client }
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

#[tokio::test]
async fn discovery_lists_builtin_groups_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let v = env.client.apiserver_version().await.unwrap();
    assert!(v.git_version.starts_with("v1.33"), "{}", v.git_version);
    let discovery = kube::discovery::Discovery::new(env.client.clone())
        .run()
        .await
        .unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "snapshot.storage.k8s.io",
    ] {
        assert!(
            groups.iter().any(|x| x == g),
            "group {g:?} missing in {groups:?}"
        );
    }
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    assert_eq!(ar.plural, "deployments");
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "deployments/scale" || r.plural == "scale")
    );
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn configmap_create_get_list_patch_delete() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &cm("one", json!({"app": "a"})))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(
        meta.uid.is_some() && meta.resource_version.is_some() && meta.creation_timestamp.is_some()
    );
    let got = api.get("one").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "v");

    let patched = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "y"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["x"], "y");
    let req = hyper::Request::patch("/api/v1/namespaces/default/configmaps/one")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json!([{"op": "add", "path": "/data/z", "value": "w"}])).unwrap())
        .unwrap();
    let patched: ConfigMap = env.client.request(req).await.unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["z"], "w");

    // An update from a stale copy conflicts.
    let mut stale = created.clone();
    stale.data = Some([("k".to_string(), "stale".to_string())].into());
    let e = api_error(
        api.replace("one", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    assert_eq!(e.reason, "Conflict");

    // A fresh copy updates.
    let mut fresh = api.get("one").await.unwrap();
    fresh.data = Some([("k".to_string(), "new".to_string())].into());
    let replaced = api
        .replace("one", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.data.unwrap()["k"], "new");

    let e = api_error(
        api.create(&PostParams::default(), &cm("one", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));

    // Names with a colon, as RBAC objects have, go through the path.
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(env.client.clone());
    let role =
        serde_json::from_value(json!({"metadata": {"name": "system:ferry-test"}, "rules": []}))
            .unwrap();
    roles.create(&PostParams::default(), &role).await.unwrap();
    roles.get("system:ferry-test").await.unwrap();
    roles
        .delete("system:ferry-test", &DeleteParams::default())
        .await
        .unwrap();

    // Server-side apply creates, then merges (no field ownership in the sandbox).
    let ssa = PatchParams::apply("ferry-test");
    let applied = api
        .patch(
            "applied",
            &ssa,
            &Patch::Apply(cm("applied", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.labels.unwrap()["a"], "1");
    let applied = api
        .patch(
            "applied",
            &ssa,
            &Patch::Apply(cm("applied", json!({"a": "2"}))),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.labels.unwrap()["a"], "2");

    api.delete("one", &DeleteParams::default()).await.unwrap();
    let e = api_error(api.get("one").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_objects_and_missing_namespaces_get_status_errors() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let e = api_error(
        api.create(&PostParams::default(), &cm("Not_Valid", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.contains("RFC 1123"), "{}", e.message);
    let nowhere: Api<ConfigMap> = Api::namespaced(env.client.clone(), "nowhere");
    let e = api_error(
        nowhere
            .create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
    assert!(
        e.message.contains("namespaces \"nowhere\" not found"),
        "{}",
        e.message
    );

    // Invalid JSON is a 400, a body over 3 MiB a 413, and the server keeps serving.
    let req = hyper::Request::post("/api/v1/namespaces/default/configmaps")
        .header("content-type", "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    let e = api_error(env.client.request_text(req).await.unwrap_err());
    assert_eq!(e.code, 400);
    let big = cm("big", json!({}));
    let mut big = serde_json::to_value(big).unwrap();
    big["data"]["k"] = json!("x".repeat(4 * 1024 * 1024));
    let big: ConfigMap = serde_json::from_value(big).unwrap();
    let e = api_error(api.create(&PostParams::default(), &big).await.unwrap_err());
    assert_eq!(e.code, 413);
    api.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();

    // A request without a valid token is refused; the viewer may read but not write.
    let mut config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(dir.path().join("kubeconfig")).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info.token = Some("wrong".to_string().into());
    let anon: Api<ConfigMap> =
        Api::namespaced(Client::try_from(config.clone()).unwrap(), "default");
    assert_eq!(
        api_error(anon.list(&ListParams::default()).await.unwrap_err()).code,
        401
    );
    config.auth_info.token = Some(env.sandbox.token("viewer").unwrap().to_string().into());
    let viewer: Api<ConfigMap> = Api::namespaced(Client::try_from(config).unwrap(), "default");
    viewer.get("after").await.unwrap();
    let e = api_error(
        viewer
            .create(&PostParams::default(), &cm("nope", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn label_selectors_filter_lists() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    for (name, labels) in [
        ("web", json!({"app": "web", "tier": "front"})),
        ("db", json!({"app": "db", "tier": "back"})),
        ("cache", json!({"app": "cache"})),
    ] {
        api.create(&PostParams::default(), &cm(name, labels))
            .await
            .unwrap();
    }
    let names = |sel: &str| {
        let api = api.clone();
        let sel = sel.to_string();
        async move {
            let mut n: Vec<String> = api
                .list(&ListParams::default().labels(&sel))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.metadata.name.unwrap())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(names("app=web").await, ["web"]);
    assert_eq!(names("app==db").await, ["db"]);
    assert_eq!(names("app!=web,app").await, ["cache", "db"]);
    assert_eq!(names("tier in (front,back)").await, ["db", "web"]);
    assert_eq!(names("app,tier notin (front)").await, ["cache", "db"]);
    assert_eq!(names("tier").await, ["db", "web"]);
    assert_eq!(names("!tier,app").await, ["cache"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=db"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let e = api_error(
        api.list(&ListParams::default().labels("app in (x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn pagination_over_two_thousand_objects() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let ns: Api<Namespace> = Api::all(env.client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "many"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "many");
    futures::stream::iter(0..2000)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &cm(&format!("cm-{i:04}"), json!({"bulk": "yes"})),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("bulk=yes").limit(300);
    let mut pages = 0;
    loop {
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        seen.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 7);
    assert_eq!(seen.len(), 2000);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 2000);

    // deletecollection removes what the selector matches, and only that.
    api.create(&PostParams::default(), &cm("keep", json!({"bulk": "no"})))
        .await
        .unwrap();
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("bulk=yes"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["keep", "kube-root-ca.crt"]);
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn deployments_scale_status_and_generation() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "busybox", "command": ["sleep", "3600"]}]}}
        }
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}})),
        )
        .await
        .unwrap();
    let containers = &patched.spec.template.spec.as_ref().unwrap().containers;
    assert_eq!(
        containers.len(),
        2,
        "strategic merge keeps the other container"
    );
    assert_eq!(containers[0].image.as_deref(), Some("nginx:2"));
    assert_eq!(patched.metadata.generation, Some(2));

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    assert_eq!(api.get("web").await.unwrap().spec.replicas, Some(5));
    // Let the controllers settle first (all five pods ready), so that what follows sees
    // only this test's writes to the status.
    let mut settled = false;
    for _ in 0..100 {
        let d = api.get("web").await.unwrap();
        if d.status.and_then(|s| s.ready_replicas) == Some(5) {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(settled, "the deployment never had five ready replicas");

    let st = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 5, "replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().ready_replicas, Some(5));
    assert_eq!(
        st.metadata.generation,
        Some(3),
        "a status change keeps the generation"
    );
    // A main-resource update cannot change status.
    let kept = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(kept.status.unwrap().ready_replicas, Some(5));

    let e = api_error(
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "bad"}, "spec": {"template": {}}}))
                .unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn watcher_sees_an_added_object() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let mut stream = watcher(
        api.clone(),
        watcher::Config::default().labels("watched=yes"),
    )
    .applied_objects()
    .boxed();
    let creator = {
        let api = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            api.create(
                &PostParams::default(),
                &cm("seen", json!({"watched": "yes"})),
            )
            .await
            .unwrap();
        })
    };
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(obj) = stream.try_next().await.unwrap() {
            if obj.metadata.name.as_deref() == Some("seen") {
                return obj;
            }
        }
        panic!("the watch ended");
    })
    .await
    .expect("the watcher saw nothing within 20 s");
    assert_eq!(found.data.unwrap()["k"], "v");
    creator.await.unwrap();
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn custom_resources_appear_when_their_crd_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                          "subresources": {"status": {}}}]
        }
    }))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let discovery = kube::discovery::Discovery::new(env.client.clone())
        .run()
        .await
        .unwrap();
    let (ar, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"))
        .expect("Widget is discovered");
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .unwrap();
    widgets.create(&PostParams::default(), &w).await.unwrap();
    let got = widgets.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 3);
    let ar2 = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let all: Api<DynamicObject> = Api::all_with(env.client.clone(), &ar2);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // Deleting the CRD removes its objects and its discovery entry.
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let e = api_error(widgets.get("w1").await.unwrap_err());
    assert_eq!(e.code, 404);
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let still = api.get("held").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    api.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(api.get("held").await.unwrap_err()).code, 404);
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn namespaces_get_a_service_account_and_take_their_contents_along() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let ns: Api<Namespace> = Api::all(env.client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap(),
    )
    .await
    .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), "shop");
    sas.get("default").await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "shop");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut dep = cm("dependent", json!({}));
    dep.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.unwrap()
    }))
    .unwrap()]);
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(api_error(cms.get("dependent").await.unwrap_err()).code, 404);

    let svcs: Api<Service> = Api::namespaced(env.client.clone(), "shop");
    let svc = svcs
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}})).unwrap(),
        )
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    assert!(spec.cluster_ip.unwrap().starts_with("10.96."));
    assert!(spec.ports.unwrap()[0].node_port.unwrap() >= 30000);

    ns.delete("shop", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(ns.get("shop").await.unwrap_err()).code, 404);
    assert_eq!(api_error(svcs.get("web").await.unwrap_err()).code, 404);
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &cm("kept", json!({})))
        .await
        .unwrap();
    env.sandbox.shutdown().await.unwrap();

    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let got = api.get("kept").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    let after = api
        .create(&PostParams::default(), &cm("later", json!({})))
        .await
        .unwrap();
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&after) > rv(&got),
        "resourceVersions keep growing after a restart"
    );
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn odd_requests_get_statuses_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let cases: &[(&str, &str, &str, &[u8], u16)] = &[
        (
            "GET",
            "/api/v1/namespaces/default/configmaps/a/b/c/d",
            "",
            b"",
            404,
        ),
        ("GET", "/apis/nope.example.com/v1/things", "", b"", 404),
        ("GET", "/api/v1/nothings", "", b"", 404),
        ("GET", "/api/v1/configmaps/x", "", b"", 404),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps/x",
            "application/json",
            b"{}",
            405,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"[1,2]",
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"{\"kind\":\"Secret\"}",
            400,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
            "application/json-patch+json",
            b"[{\"op\":\"remove\",\"path\":\"/nope\"}]",
            422,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
            "text/plain",
            b"{}",
            415,
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default/configmaps/missing",
            "application/merge-patch+json",
            b"{}",
            404,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?labelSelector=%28%28",
            "",
            b"",
            400,
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?continue=zz",
            "",
            b"",
            400,
        ),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
            "application/json",
            b"{\"metadata\":{\"name\":\"other\"}}",
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces",
            "application/json",
            b"{\"metadata\":{\"name\":\"x\"},\"status\":\"bad\"}",
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/secrets",
            "application/json",
            b"{\"metadata\":{\"name\":\"x\"},\"data\":[1]}",
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/services",
            "application/json",
            b"{\"metadata\":{\"name\":\"x\"},\"spec\":{\"ports\":[1]}}",
            422,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/secrets",
            "application/json",
            b"{\"metadata\":{\"name\":\"y\"},\"data\":{\"a\":\"!!\"}}",
            422,
        ),
    ];
    for (method, path, ct, body, code) in cases {
        let req = hyper::Request::builder()
            .method(*method)
            .uri(*path)
            .header("content-type", *ct)
            .body(body.to_vec())
            .unwrap();
        let e = api_error(env.client.request_text(req).await.unwrap_err());
        assert_eq!(e.code, *code, "{method} {path}: {}", e.message);
    }
    assert!(env.client.apiserver_version().await.is_ok());
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn watch_replays_from_a_resource_version() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let first = api
        .create(&PostParams::default(), &cm("first", json!({})))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("second", json!({})))
        .await
        .unwrap();
    api.delete("first", &DeleteParams::default()).await.unwrap();
    let rv = first.metadata.resource_version.unwrap();
    let wp = kube::api::WatchParams::default().timeout(2);
    let events: Vec<_> = api
        .watch(&wp, &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let seen: Vec<String> = events
        .iter()
        .map(|e| match e {
            kube::api::WatchEvent::Added(o) => {
                format!("ADDED {}", o.metadata.name.clone().unwrap())
            }
            kube::api::WatchEvent::Deleted(o) => {
                format!("DELETED {}", o.metadata.name.clone().unwrap())
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(seen, ["ADDED second", "DELETED first"]);
    // A filtered watch sees an object enter and leave its selection.
    let from = api
        .get("second")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for value in ["yes", "no"] {
        api.patch(
            "second",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"picked": value}}})),
        )
        .await
        .unwrap();
    }
    let filtered: Vec<_> = api
        .watch(
            &kube::api::WatchParams::default()
                .labels("picked=yes")
                .timeout(1),
            &from,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = filtered
        .iter()
        .map(|e| match e {
            kube::api::WatchEvent::Added(_) => "ADDED",
            kube::api::WatchEvent::Deleted(_) => "DELETED",
            _ => "OTHER",
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "DELETED"]);

    // A streaming list: the current objects, then a bookmark that ends them.
    let req = hyper::Request::get(
        "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true\
         &allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1",
    )
    .body(Vec::new())
    .unwrap();
    let text = env.client.request_text(req).await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "ADDED", "BOOKMARK"], "{text}");
    let end = &lines[2]["object"]["metadata"];
    assert_eq!(end["annotations"]["k8s.io/initial-events-end"], "true");

    // A resourceVersion the server cannot replay from ends the stream with 410 Gone.
    let gone: Vec<_> = api
        .watch(&wp, "999999")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    match gone.as_slice() {
        [kube::api::WatchEvent::Error(e)] => assert_eq!(e.code, 410),
        other => panic!("expected one 410 error event, got {other:?}"),
    }
    env.sandbox.shutdown().await.unwrap();
}

/// The `ferry sandbox` commands: background up, status, a kill at an arbitrary moment,
/// up again with the state intact (and the containers the killed one left ended), down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_up_status_kill_up_down() {
    let home = tempfile::tempdir().unwrap();
    let ferry = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_STATE_HOME", home.path().join("state"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ferry {args:?} failed:\n{text}");
        text
    };
    let root = home.path().join("data/ferry/sandbox");
    // Whatever happens, stop the background sandboxes this test starts.
    struct Down<'a>(&'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
                .env("HOME", self.0)
                .env("XDG_DATA_HOME", self.0.join("data"))
                .env("XDG_STATE_HOME", self.0.join("state"))
                .env("XDG_CONFIG_HOME", self.0.join("config"))
                .args(["sandbox", "down"])
                .output();
        }
    }
    let _down = Down(home.path());
    let out = ferry(&["sandbox", "up", "--name", "prod", "--name", "qa"]);
    assert!(out.contains("export KUBECONFIG="), "{out}");
    let status = ferry(&["sandbox", "status"]);
    assert!(
        status.contains("prod") && status.contains("qa") && status.contains("running"),
        "{status}"
    );

    let kc = Kubeconfig::read_from(root.join("kubeconfig")).unwrap();
    assert_eq!(kc.contexts.len(), 2);
    let opts = KubeConfigOptions {
        context: Some("ferry-prod".into()),
        ..Default::default()
    };
    let client =
        Client::try_from(Config::from_custom_kubeconfig(kc, &opts).await.unwrap()).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
    }
    // A container that runs (isolated by runc as root: out of the sandbox's process
    // group, so a killed sandbox leaves it behind).
    let isolated = nix::unistd::geteuid().is_root();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "sleeper"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3602"]}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let sleepers = || crate::support::procs::pids_where(|c| c == "sleep\x003602\x00");
    let wait_sleepers = |n: usize, not: Vec<u32>| async move {
        for _ in 0..200 {
            let now = sleepers();
            if now.len() == n && !now.iter().any(|p| not.contains(p)) {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "not {n} sleeping containers (apart from {not:?}): {:?}",
            sleepers()
        );
    };
    let first = wait_sleepers(1, vec![]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Kill prod without warning, then bring it back.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("prod/server.json")).unwrap()).unwrap();
    let pid = info["pid"].as_i64().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if isolated {
        // The killed sandbox's container runs on ...
        assert_eq!(sleepers(), first);
    }
    ferry(&["sandbox", "up", "--name", "prod"]);
    if isolated {
        // ... until the sandbox is up again: then only the container it starts anew.
        wait_sleepers(1, first.clone()).await;
    }
    let kc = Kubeconfig::read_from(root.join("kubeconfig")).unwrap();
    let client =
        Client::try_from(Config::from_custom_kubeconfig(kc, &opts).await.unwrap()).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..20 {
        api.get(&format!("c{i}")).await.unwrap();
    }
    let out = ferry(&["sandbox", "down"]);
    assert!(
        out.contains("prod stopped") && out.contains("qa stopped"),
        "{out}"
    );
    assert!(ferry(&["sandbox", "status"]).contains("stopped"));
    assert!(!root.join("kubeconfig").exists());
    // Down stops the containers too.
    wait_sleepers(0, vec![]).await;
}

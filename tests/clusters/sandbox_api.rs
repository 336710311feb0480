//! API-server fidelity of the sandbox through kube-rs: server-side dry-run of every verb,
//! RBAC authorization with SelfSubject reviews, and server-side apply field ownership.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use ferry_sandbox::{Sandbox, SandboxConfig, write_kubeconfig};
use futures::StreamExt;
use hyper::http;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{SelfSubjectAccessReview, SelfSubjectRulesReview};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};

struct Env {
    sandbox: Sandbox,
    client: Client,
    config: Config,
}

async fn start(dir: &Path) -> Env {
    let sandbox = Sandbox::start(SandboxConfig::new("api", dir.join("state")))
        .await
        .unwrap();
    let path = dir.join("kubeconfig");
    write_kubeconfig(&path, &[sandbox.kubeconfig_entry()]).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config.clone()).unwrap();
    Env {
        sandbox,
        client,
        config,
    }
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A request kube-rs has no typed call for; the `Status` of a failure.
async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Value,
) -> Result<Value, kube::core::Status> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(req).await.map_err(api_error)
}

fn cm(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data
    }))
    .unwrap()
}

fn dry() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

async fn list_rv(api: &Api<ConfigMap>) -> String {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

#[tokio::test]
async fn dry_run_of_every_verb_answers_like_the_real_call_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let svcs: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let existing = cms
        .create(
            &PostParams::default(),
            &cm("keep", json!({"app": "dry"}), json!({"a": "1"})),
        )
        .await
        .unwrap();
    let existing_rv = existing.metadata.resource_version.clone().unwrap();
    cms.create(
        &PostParams::default(),
        &cm("keep2", json!({"app": "dry"}), json!({"a": "1"})),
    )
    .await
    .unwrap();

    // create: defaulted and allocated as for real, but nothing kept or taken.
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}
    }))
    .unwrap();
    let planned = svcs.create(&dry(), &svc).await.unwrap();
    let spec = planned.spec.clone().unwrap();
    let ip = spec.cluster_ip.clone().unwrap();
    assert!(ip.starts_with("10.96."), "{ip}");
    let node_port = spec.ports.as_ref().unwrap()[0].node_port.unwrap();
    assert!(planned.metadata.uid.is_some());
    assert!(planned.metadata.creation_timestamp.is_some());
    assert_eq!(planned.metadata.resource_version, None);
    assert_eq!(api_error(svcs.get("web").await.unwrap_err()).code, 404);
    // The IP and node port the dry run showed are still free.
    let mut real: Service = svc.clone();
    real.metadata.name = Some("taker".into());
    let spec = real.spec.as_mut().unwrap();
    spec.cluster_ip = Some(ip.clone());
    spec.ports.as_mut().unwrap()[0].node_port = Some(node_port);
    svcs.create(&PostParams::default(), &real).await.unwrap();
    let rv_before = list_rv(&cms).await;
    // A watch from now on must see no event from any dry run: its first event is the
    // real change made at the end.
    let mut events = cms
        .watch(&WatchParams::default(), &rv_before)
        .await
        .unwrap()
        .boxed();

    // create failures are the real ones: 409 for a name in use, 422 for a bad one.
    let e = api_error(
        cms.create(&dry(), &cm("keep", json!({}), json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    let e = api_error(
        cms.create(&dry(), &cm("Bad_Name", json!({}), json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    let created = cms
        .create(&dry(), &cm("fresh", json!({}), json!({"x": "y"})))
        .await
        .unwrap();
    assert_eq!(created.data.as_ref().unwrap()["x"], "y");
    let created = serde_json::to_value(&created).unwrap();
    assert!(created.get("items").is_none(), "{created}");
    assert_eq!(api_error(cms.get("fresh").await.unwrap_err()).code, 404);

    // update (replace): the new content with the stored resourceVersion; a stale
    // resourceVersion is the real 409.
    let mut changed = existing.clone();
    changed.data = Some([("a".to_string(), "2".to_string())].into());
    let replaced = cms.replace("keep", &dry(), &changed).await.unwrap();
    assert_eq!(replaced.data.unwrap()["a"], "2");
    assert_eq!(replaced.metadata.resource_version.unwrap(), existing_rv);
    let mut stale = changed.clone();
    stale.metadata.resource_version = Some("1".into());
    let e = api_error(cms.replace("keep", &dry(), &stale).await.unwrap_err());
    assert_eq!(e.code, 409);

    // patch, every type, including a server-side apply that would create.
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let merged = cms
        .patch("keep", &pp, &Patch::Merge(json!({"data": {"m": "1"}})))
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap()["m"], "1");
    let strategic = cms
        .patch("keep", &pp, &Patch::Strategic(json!({"data": {"s": "1"}})))
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["s"], "1");
    // JSON patch (kube-rs needs a feature for it): raw requests.
    let path = "/api/v1/namespaces/default/configmaps/keep?dryRun=All";
    let ct = "application/json-patch+json";
    let patched = raw(
        &env.client,
        "PATCH",
        path,
        ct,
        json!([{"op": "add", "path": "/data/j", "value": "1"}]),
    )
    .await
    .unwrap();
    assert_eq!(patched["data"]["j"], "1");
    assert_eq!(patched["metadata"]["resourceVersion"], existing_rv.as_str());
    let bad = json!([{"op": "test", "path": "/data/a", "value": "9"}]);
    let e = raw(&env.client, "PATCH", path, ct, bad).await.unwrap_err();
    assert_eq!(e.code, 422);
    let apply = PatchParams::apply("dry-test").dry_run();
    let applied = cms
        .patch(
            "applied",
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "applied"}, "data": {"p": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.unwrap()["p"], "1");
    assert_eq!(applied.metadata.resource_version, None);
    assert_eq!(api_error(cms.get("applied").await.unwrap_err()).code, 404);
    let e = api_error(
        cms.patch("missing", &pp, &Patch::Merge(json!({"data": {}})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);

    // delete and deletecollection: the answer lists what would go; it all stays.
    let dp = DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    cms.delete("keep", &dp).await.unwrap();
    let e = api_error(cms.delete("missing", &dp).await.unwrap_err());
    assert_eq!(e.code, 404);
    let gone = cms
        .delete_collection(&dp, &ListParams::default().labels("app=dry"))
        .await
        .unwrap();
    let names: Vec<String> = gone
        .left()
        .expect("a list of what would be deleted")
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(names, ["keep", "keep2"]);

    // Nothing moved: same data, same resourceVersion everywhere.
    let now = cms.get("keep").await.unwrap();
    assert_eq!(
        now.data.unwrap(),
        [("a".to_string(), "1".to_string())].into()
    );
    assert_eq!(now.metadata.resource_version.unwrap(), existing_rv);
    assert_eq!(list_rv(&cms).await, rv_before);
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );

    // An unknown dryRun value is refused as the API server refuses it.
    let e = raw(
        &env.client,
        "POST",
        "/api/v1/namespaces/default/configmaps?dryRun=Everything",
        "application/json",
        serde_json::to_value(cm("x", json!({}), json!({}))).unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.contains("dryRun"), "{}", e.message);

    cms.create(&PostParams::default(), &cm("marker", json!({}), json!({})))
        .await
        .unwrap();
    loop {
        match events.next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => {
                assert_eq!(o.metadata.name.as_deref(), Some("marker"));
                break;
            }
            WatchEvent::Bookmark(_) => continue,
            other => panic!("a dry run reached a watch: {other:?}"),
        }
    }
    drop(events);
    env.sandbox.shutdown().await.unwrap();
}

/// A client of the same sandbox authenticated by `token`.
fn client_with_token(env: &Env, token: &str) -> Client {
    let mut config = env.config.clone();
    config.auth_info.token = Some(token.to_string().into());
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn rbac_lets_a_developer_create_in_qa_only_and_reviews_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = start(dir.path()).await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for ns in ["qa", "prod"] {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "developers-edit"},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "developers"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(env.client.clone(), "qa")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let token = env
        .sandbox
        .add_user("dev", &["developers".to_string()])
        .unwrap();
    let dev = client_with_token(&env, &token);

    // Discovery is open to every authenticated user.
    let discovery = kube::discovery::Discovery::new(dev.clone())
        .run()
        .await
        .unwrap();
    assert!(discovery.groups().any(|g| g.name() == "apps"));

    let qa: Api<ConfigMap> = Api::namespaced(dev.clone(), "qa");
    qa.create(&PostParams::default(), &cm("made", json!({}), json!({})))
        .await
        .unwrap();
    let prod: Api<ConfigMap> = Api::namespaced(dev.clone(), "prod");
    let e = api_error(
        prod.create(&PostParams::default(), &cm("made", json!({}), json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "configmaps is forbidden: User \"dev\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"prod\""
    );
    let e = api_error(prod.get("kube-root-ca.crt").await.unwrap_err());
    assert_eq!(
        e.message,
        "configmaps \"kube-root-ca.crt\" is forbidden: User \"dev\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"prod\""
    );
    // Watches go through the same authorizer.
    let e = api_error(
        prod.watch(&WatchParams::default(), "0")
            .await
            .err()
            .expect("a watch in prod is forbidden"),
    );
    assert_eq!(e.code, 403);
    // Dry runs are authorized like the real request.
    let e = api_error(
        prod.create(&dry(), &cm("made", json!({}), json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);

    // whoami
    let review: SelfSubjectReview = serde_json::from_value(json!({})).unwrap();
    let me = Api::<SelfSubjectReview>::all(dev.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let info = me.status.unwrap().user_info.unwrap();
    assert_eq!(info.username.as_deref(), Some("dev"));
    assert_eq!(info.groups.unwrap(), ["developers", "system:authenticated"]);

    // can-i
    let can = |ns: &str, verb: &str, resource: &str| {
        serde_json::from_value::<SelfSubjectAccessReview>(json!({"spec": {"resourceAttributes":
            {"namespace": ns, "verb": verb, "resource": resource, "group": ""}}}))
        .unwrap()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(dev.clone());
    for (ns, verb, resource, expected) in [
        ("qa", "create", "configmaps", true),
        ("qa", "delete", "secrets", true),
        ("prod", "create", "configmaps", false),
        ("qa", "create", "roles", false),
    ] {
        let r = reviews
            .create(&PostParams::default(), &can(ns, verb, resource))
            .await
            .unwrap();
        assert_eq!(
            r.status.unwrap().allowed,
            expected,
            "{verb} {resource} in {ns}"
        );
    }
    let rules: SelfSubjectRulesReview =
        serde_json::from_value(json!({"spec": {"namespace": "qa"}})).unwrap();
    let rules = Api::<SelfSubjectRulesReview>::all(dev.clone())
        .create(&PostParams::default(), &rules)
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(rules.resource_rules.iter().any(|r| {
        r.verbs.iter().any(|v| v == "create")
            && r.resources
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|x| x == "configmaps"))
    }));
    assert!(!rules.non_resource_rules.is_empty());

    // The viewer reads what `view` allows, and nothing else.
    let viewer = client_with_token(&env, env.sandbox.token("viewer").unwrap());
    Api::<ConfigMap>::namespaced(viewer.clone(), "qa")
        .get("made")
        .await
        .unwrap();
    let e = api_error(
        Api::<Secret>::namespaced(viewer.clone(), "qa")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    let e = api_error(
        Api::<ConfigMap>::namespaced(viewer, "qa")
            .delete("made", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    env.sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn server_side_apply_tracks_owners_and_refuses_conflicts_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let env = start(dir.path()).await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let config = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned"}, "data": data});
    let first = cms
        .patch(
            "owned",
            &PatchParams::apply("alice"),
            &Patch::Apply(config(json!({"a": "1", "b": "1"}))),
        )
        .await
        .unwrap();
    let managed = first.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("alice"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    assert_eq!(managed[0].fields_type.as_deref(), Some("FieldsV1"));
    let fields = serde_json::to_value(managed[0].fields_v1.as_ref().unwrap()).unwrap();
    assert_eq!(fields, json!({"f:data": {"f:a": {}, "f:b": {}}}));

    // A second manager changing alice's field: a conflict naming her, unless forced.
    let e = api_error(
        cms.patch(
            "owned",
            &PatchParams::apply("bob"),
            &Patch::Apply(config(json!({"a": "2", "c": "1"}))),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("conflict with \"alice\""),
        "{}",
        e.message
    );
    assert!(e.message.contains(".data.a"), "{}", e.message);
    // The same value is no conflict: both own it.
    cms.patch(
        "owned",
        &PatchParams::apply("bob"),
        &Patch::Apply(config(json!({"b": "1"}))),
    )
    .await
    .unwrap();
    let forced = cms
        .patch(
            "owned",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(config(json!({"a": "2", "b": "1", "c": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["a"], "2");

    // alice stops applying a and b: a is bob's now and b is shared, so both stay; when
    // alice drops a field only she owns, it goes.
    cms.patch(
        "owned",
        &PatchParams::apply("alice"),
        &Patch::Apply(config(json!({"d": "1"}))),
    )
    .await
    .unwrap();
    cms.patch(
        "owned",
        &PatchParams::apply("alice"),
        &Patch::Apply(config(json!({}))),
    )
    .await
    .unwrap();
    let now = cms.get("owned").await.unwrap();
    let data = now.data.unwrap();
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );

    // A plain update makes its manager the owner of what it changed.
    let updated = cms
        .patch(
            "owned",
            &PatchParams {
                field_manager: Some("carol".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"c": "3"}})),
        )
        .await
        .unwrap();
    let carol = updated
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|m| m.manager.as_deref() == Some("carol"))
        .unwrap();
    assert_eq!(carol.operation.as_deref(), Some("Update"));
    assert_eq!(
        serde_json::to_value(carol.fields_v1.unwrap()).unwrap(),
        json!({"f:data": {"f:c": {}}})
    );
    let e = api_error(
        cms.patch(
            "owned",
            &PatchParams::apply("bob"),
            &Patch::Apply(config(json!({"a": "2", "b": "1", "c": "9"}))),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        e.message.contains("conflict with \"carol\""),
        "{}",
        e.message
    );

    // An apply without a field manager is refused as the API server refuses it.
    let e = raw(
        &env.client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/owned",
        "application/apply-patch+yaml",
        config(json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, 422);
    env.sandbox.shutdown().await.unwrap();
}

//! A sandbox that behaves like a cluster: workload controllers, scheduling and pod
//! status, Endpoints, the storage provisioner, snapshots, `ferry sandbox seed`, all seen
//! through kube-rs (and kubectl for rollouts) against an in-process sandbox.
//!
//! Waits poll the API until the state is reached; the generous limit only turns a hang
//! into a failure that shows the last object seen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_sandbox::{
    ReclaimPolicy, Sandbox, SandboxConfig, SeedOptions, StorageClassSpec, VolumeBindingMode, seed,
    write_kubeconfig,
};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(60);

async fn client_for(dir: &Path, sandbox: &Sandbox) -> Client {
    let path = dir.join("kubeconfig");
    write_kubeconfig(&path, &[sandbox.kubeconfig_entry()]).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn ar(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn kind_ar(kind: &str) -> ApiResource {
    match kind {
        "Pod" => ar("v1", "Pod", "pods"),
        "Service" => ar("v1", "Service", "services"),
        "Endpoints" => ar("v1", "Endpoints", "endpoints"),
        "Event" => ar("v1", "Event", "events"),
        "PersistentVolumeClaim" => ar("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        "PersistentVolume" => ar("v1", "PersistentVolume", "persistentvolumes"),
        "Node" => ar("v1", "Node", "nodes"),
        "Deployment" => ar("apps/v1", "Deployment", "deployments"),
        "ReplicaSet" => ar("apps/v1", "ReplicaSet", "replicasets"),
        "StatefulSet" => ar("apps/v1", "StatefulSet", "statefulsets"),
        "DaemonSet" => ar("apps/v1", "DaemonSet", "daemonsets"),
        "Job" => ar("batch/v1", "Job", "jobs"),
        "StorageClass" => ar("storage.k8s.io/v1", "StorageClass", "storageclasses"),
        "VolumeSnapshot" => ar(
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshot",
            "volumesnapshots",
        ),
        "VolumeSnapshotContent" => ar(
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshotContent",
            "volumesnapshotcontents",
        ),
        other => panic!("no resource for {other} in this test"),
    }
}

fn api(client: &Client, kind: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let r = kind_ar(kind);
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &r),
        None => Api::all_with(client.clone(), &r),
    }
}

async fn create(client: &Client, ns: Option<&str>, obj: Value) -> Value {
    let kind = obj["kind"].as_str().unwrap().to_string();
    let o: DynamicObject = serde_json::from_value(obj).unwrap();
    let created = api(client, &kind, ns)
        .create(&PostParams::default(), &o)
        .await
        .unwrap();
    serde_json::to_value(created).unwrap()
}

async fn get(client: &Client, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    api(client, kind, ns)
        .get_opt(name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

async fn list(client: &Client, kind: &str, ns: Option<&str>, labels: &str) -> Vec<Value> {
    let lp = ListParams::default().labels(labels);
    api(client, kind, ns)
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

/// Polls the object until `pred` holds; returns it.
async fn wait_for(
    client: &Client,
    kind: &str,
    ns: Option<&str>,
    name: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let o = get(client, kind, ns, name).await;
        if let Some(o) = &o
            && pred(o)
        {
            return o.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{kind} {name} never got {what}; last seen: {o:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a list until `pred` holds; returns it.
async fn wait_for_list(
    client: &Client,
    kind: &str,
    ns: Option<&str>,
    labels: &str,
    what: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let items = list(client, kind, ns, labels).await;
        if pred(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} list ({labels}) never got {what}; last seen: {items:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_gone(client: &Client, kind: &str, ns: Option<&str>, name: &str) {
    let deadline = Instant::now() + PATIENCE;
    while get(client, kind, ns, name).await.is_some() {
        assert!(Instant::now() < deadline, "{kind} {name} was never removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_event(client: &Client, ns: &str, object: &str, reason: &str) -> Value {
    let found = wait_for_list(
        client,
        "Event",
        Some(ns),
        "",
        &format!("a {reason} event for {object}"),
        |evs| {
            evs.iter()
                .any(|e| e["involvedObject"]["name"] == object && e["reason"] == reason)
        },
    )
    .await;
    found
        .into_iter()
        .find(|e| e["involvedObject"]["name"] == object && e["reason"] == reason)
        .unwrap()
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c["status"] == "True")
}

fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": image,
                                                       "ports": [{"name": "http", "containerPort": 8080}]}]}}},
    })
}

fn rolled_out(d: &Value, replicas: i64) -> bool {
    let s = &d["status"];
    s["observedGeneration"] == d["metadata"]["generation"]
        && s["replicas"] == replicas
        && s["updatedReplicas"] == replicas
        && s["readyReplicas"] == replicas
        && s["availableReplicas"] == replicas
        && condition_true(d, "Available")
        && condition(d, "Progressing").is_some_and(|c| c["reason"] == "NewReplicaSetAvailable")
}

fn volume_folder(state: &Path, pv: &Value) -> PathBuf {
    state
        .join("volumes")
        .join(pv["spec"]["csi"]["volumeHandle"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_roll_out_scale_and_endpoints_follow() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new("wl", dir.path().join("state")))
        .await
        .unwrap();
    let client = client_for(dir.path(), &sandbox).await;
    let ns = Some("default");

    // Worker nodes in their own zones, besides the control plane.
    let nodes = list(&client, "Node", None, "").await;
    let zones: std::collections::BTreeSet<&str> = nodes
        .iter()
        .map(|n| {
            n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:#?}");
    assert_eq!(zones.len(), 3);
    assert!(get(&client, "Node", None, "wl-worker-a").await.is_some());

    create(&client, ns, deployment("web", 2, "nginx:1.27")).await;
    create(
        &client,
        ns,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
    )
    .await;
    let d = wait_for(
        &client,
        "Deployment",
        ns,
        "web",
        "a finished rollout",
        |d| rolled_out(d, 2),
    )
    .await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );

    let sets = list(&client, "ReplicaSet", ns, "app=web").await;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    let owner = &rs["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Deployment");
    assert_eq!(owner["uid"], d["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    assert_eq!(rs["status"]["readyReplicas"], 2);

    let pods = list(&client, "Pod", ns, "app=web").await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Running");
        assert!(
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("web-{hash}-"))
        );
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["uid"],
            rs["metadata"]["uid"]
        );
        let node = p["spec"]["nodeName"].as_str().unwrap();
        assert!(node.starts_with("wl-worker-"), "{node}");
        assert!(
            p["status"]["podIP"]
                .as_str()
                .unwrap()
                .starts_with("10.244.")
        );
        assert!(p["status"]["hostIP"].is_string());
        for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert!(condition_true(p, ty), "{ty} in {p:#?}");
        }
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert!(cs["state"]["running"]["startedAt"].is_string());
        assert_eq!(cs["image"], "docker.io/library/nginx:1.27");
        assert!(cs["imageID"].as_str().unwrap().contains("@sha256:"));
        assert!(
            cs["containerID"]
                .as_str()
                .unwrap()
                .starts_with("containerd://")
        );
    }
    // Two replicas spread over the two workers.
    assert_ne!(pods[0]["spec"]["nodeName"], pods[1]["spec"]["nodeName"]);

    // Endpoints follow the Service's selector, with the named target port resolved.
    let ep = wait_for(&client, "Endpoints", ns, "web", "two addresses", |e| {
        e["subsets"][0]["addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    })
    .await;
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
    assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["kind"], "Pod");

    // Scale through the scale subresource.
    let deployments: Api<DynamicObject> = api(&client, "Deployment", ns);
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    wait_for(&client, "Deployment", ns, "web", "three replicas", |d| {
        rolled_out(d, 3)
    })
    .await;
    wait_for(&client, "Endpoints", ns, "web", "three addresses", |e| {
        e["subsets"][0]["addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 3)
    })
    .await;

    // A new template rolls: a new ReplicaSet up, the old one down to zero.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:1.28",
                "ports": [{"name": "http", "containerPort": 8080}]}]}}}})),
        )
        .await
        .unwrap();
    let d = wait_for(
        &client,
        "Deployment",
        ns,
        "web",
        "the second rollout",
        |d| {
            rolled_out(d, 3)
                && d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        },
    )
    .await;
    assert_eq!(d["metadata"]["generation"], 3);
    let sets = wait_for_list(
        &client,
        "ReplicaSet",
        ns,
        "app=web",
        "the old set at zero",
        |sets| {
            sets.len() == 2
                && sets
                    .iter()
                    .any(|rs| rs["spec"]["replicas"] == 0 && rs["status"]["replicas"] == 0)
        },
    )
    .await;
    assert!(sets.iter().any(|rs| rs["spec"]["replicas"] == 3));
    let pods = wait_for_list(&client, "Pod", ns, "app=web", "only new pods", |pods| {
        pods.len() == 3
            && pods.iter().all(|p| {
                p["spec"]["containers"][0]["image"] == "nginx:1.28"
                    && p["status"]["phase"] == "Running"
            })
    })
    .await;
    assert_eq!(pods.len(), 3);

    // Scale down: endpoints follow again.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    wait_for(&client, "Endpoints", ns, "web", "one address", |e| {
        e["subsets"][0]["addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    wait_for(&client, "Deployment", ns, "web", "one replica", |d| {
        rolled_out(d, 1)
    })
    .await;

    // Deleting the Deployment collects its ReplicaSets and pods.
    deployments
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for_list(&client, "Pod", ns, "app=web", "no pods", |p| p.is_empty()).await;
    sandbox.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulsets_get_pods_and_bound_claims_with_folders() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sandbox = Sandbox::start(SandboxConfig::new("wl", &state))
        .await
        .unwrap();
    let client = client_for(dir.path(), &sandbox).await;
    let ns = Some("default");
    create(
        &client,
        ns,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "pg", "image": "postgres:16",
                                                              "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}]}]}},
                        "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                                  "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "3Gi"}}}}]}}),
    )
    .await;
    let sts = wait_for(
        &client,
        "StatefulSet",
        ns,
        "db",
        "two ready replicas",
        |s| {
            s["status"]["readyReplicas"] == 2
                && s["status"]["replicas"] == 2
                && s["status"]["updatedReplicas"] == 2
                && s["status"]["currentRevision"] == s["status"]["updateRevision"]
                && s["status"]["observedGeneration"] == s["metadata"]["generation"]
        },
    )
    .await;
    for i in 0..2 {
        let pod = get(&client, "Pod", ns, &format!("db-{i}")).await.unwrap();
        assert_eq!(pod["status"]["phase"], "Running");
        assert_eq!(
            pod["metadata"]["ownerReferences"][0]["uid"],
            sts["metadata"]["uid"]
        );
        assert_eq!(
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            format!("db-{i}")
        );
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            format!("data-db-{i}")
        );
        let pvc = get(
            &client,
            "PersistentVolumeClaim",
            ns,
            &format!("data-db-{i}"),
        )
        .await
        .unwrap();
        assert_eq!(pvc["status"]["phase"], "Bound", "{pvc:#?}");
        assert!(
            pvc["metadata"]["ownerReferences"].is_null(),
            "claims are not owned: {pvc:#?}"
        );
        assert_eq!(pvc["metadata"]["labels"]["app"], "db");
        assert_eq!(pvc["spec"]["storageClassName"], "standard");
        assert_eq!(pvc["status"]["capacity"]["storage"], "3Gi");
        let ann = &pvc["metadata"]["annotations"];
        assert_eq!(ann["pv.kubernetes.io/bind-completed"], "yes");
        assert_eq!(ann["pv.kubernetes.io/bound-by-controller"], "yes");
        assert_eq!(
            ann["volume.kubernetes.io/storage-provisioner"],
            "sandbox.ferry.dev/hostpath"
        );
        assert_eq!(
            ann["volume.kubernetes.io/selected-node"],
            pod["spec"]["nodeName"]
        );
        let pv_name = pvc["spec"]["volumeName"].as_str().unwrap();
        assert_eq!(
            pv_name,
            format!("pvc-{}", pvc["metadata"]["uid"].as_str().unwrap())
        );
        let pv = get(&client, "PersistentVolume", None, pv_name)
            .await
            .unwrap();
        assert_eq!(pv["status"]["phase"], "Bound");
        assert_eq!(pv["spec"]["csi"]["driver"], "sandbox.ferry.dev/hostpath");
        assert_eq!(pv["spec"]["csi"]["volumeHandle"], pv_name);
        assert_eq!(pv["spec"]["capacity"]["storage"], "3Gi");
        assert_eq!(pv["spec"]["claimRef"]["uid"], pvc["metadata"]["uid"]);
        assert_eq!(pv["spec"]["storageClassName"], "standard");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert!(volume_folder(&state, &pv).is_dir());
    }
    // Scaling down removes the highest pod and keeps its claim.
    api(&client, "StatefulSet", ns)
        .patch_scale(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    wait_gone(&client, "Pod", ns, "db-1").await;
    assert!(
        get(&client, "PersistentVolumeClaim", ns, "data-db-1")
            .await
            .is_some()
    );
    sandbox.shutdown().await.unwrap();
}

fn immediate_class() -> StorageClassSpec {
    StorageClassSpec {
        name: "fast".into(),
        provisioner: "fast.csi.example.com".into(),
        parameters: Default::default(),
        binding_mode: VolumeBindingMode::Immediate,
        reclaim_policy: ReclaimPolicy::Delete,
        allow_volume_expansion: true,
        default: false,
    }
}

fn pvc(name: &str, class: Option<&str>, size: &str) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                       "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}});
    if let Some(c) = class {
        p["spec"]["storageClassName"] = json!(c);
    }
    p
}

fn mover_pod(name: &str, claim: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "mover", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                    "volumeMounts": [{"name": "v", "mountPath": "/data"}]}],
                    "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_modes_missing_classes_expansion_and_reclaim() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut config = SandboxConfig::new("st", &state);
    config.storage_classes.push(immediate_class());
    let sandbox = Sandbox::start(config).await.unwrap();
    let client = client_for(dir.path(), &sandbox).await;
    let ns = Some("default");

    // WaitForFirstConsumer: Pending, with the event, until a pod uses the claim.
    create(&client, ns, pvc("later", None, "1Gi")).await;
    wait_event(&client, "default", "later", "WaitForFirstConsumer").await;
    let claim = get(&client, "PersistentVolumeClaim", ns, "later")
        .await
        .unwrap();
    assert_eq!(claim["status"]["phase"], "Pending");
    assert_eq!(
        claim["spec"]["storageClassName"], "standard",
        "the default class is set"
    );
    assert!(claim["spec"]["volumeName"].is_null());

    create(&client, ns, mover_pod("mover", "later")).await;
    let pod = wait_for(&client, "Pod", ns, "mover", "Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;
    let claim = wait_for(
        &client,
        "PersistentVolumeClaim",
        ns,
        "later",
        "Bound",
        |c| c["status"]["phase"] == "Bound",
    )
    .await;
    let node_name = pod["spec"]["nodeName"].as_str().unwrap();
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        node_name
    );
    let node = get(&client, "Node", None, node_name).await.unwrap();
    let pv_name = claim["spec"]["volumeName"].as_str().unwrap();
    let pv = get(&client, "PersistentVolume", None, pv_name)
        .await
        .unwrap();
    let term =
        &pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
    assert_eq!(term["key"], "topology.kubernetes.io/zone");
    assert_eq!(
        term["values"][0],
        node["metadata"]["labels"]["topology.kubernetes.io/zone"]
    );
    let folder = volume_folder(&state, &pv);
    assert!(folder.is_dir());

    // Immediate: bound without a pod.
    create(&client, ns, pvc("now", Some("fast"), "1Gi")).await;
    let now = wait_for(&client, "PersistentVolumeClaim", ns, "now", "Bound", |c| {
        c["status"]["phase"] == "Bound"
    })
    .await;
    assert_eq!(
        now["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"],
        "fast.csi.example.com"
    );

    // Expansion: a bigger request grows the volume.
    api(&client, "PersistentVolumeClaim", ns)
        .patch(
            "now",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "5Gi"}}}})),
        )
        .await
        .unwrap();
    wait_for(&client, "PersistentVolumeClaim", ns, "now", "5Gi", |c| {
        c["status"]["capacity"]["storage"] == "5Gi"
    })
    .await;
    let pv = get(
        &client,
        "PersistentVolume",
        None,
        now["spec"]["volumeName"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(pv["spec"]["capacity"]["storage"], "5Gi");

    // A class that does not exist: Pending with ProvisioningFailed.
    create(&client, ns, pvc("nowhere", Some("no-such-class"), "1Gi")).await;
    let ev = wait_event(&client, "default", "nowhere", "ProvisioningFailed").await;
    assert!(
        ev["message"].as_str().unwrap().contains("no-such-class"),
        "{ev:#?}"
    );
    assert_eq!(ev["type"], "Warning");
    let claim = get(&client, "PersistentVolumeClaim", ns, "nowhere")
        .await
        .unwrap();
    assert_eq!(claim["status"]["phase"], "Pending");

    // A pod whose claim is missing stays Pending, saying why.
    create(&client, ns, mover_pod("orphan", "missing-claim")).await;
    let orphan = wait_for(
        &client,
        "Pod",
        ns,
        "orphan",
        "an Unschedulable condition",
        |p| {
            condition(p, "PodScheduled")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "Unschedulable")
        },
    )
    .await;
    assert_eq!(orphan["status"]["phase"], "Pending");
    assert!(
        condition(&orphan, "PodScheduled").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("\"missing-claim\" not found")
    );

    // Pre-bound static volume: binds without provisioning.
    create(
        &client,
        None,
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "static-pv"},
               "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                        "persistentVolumeReclaimPolicy": "Retain",
                        "claimRef": {"namespace": "default", "name": "static"},
                        "csi": {"driver": "sandbox.ferry.dev/hostpath", "volumeHandle": "static-pv"}}}),
    )
    .await;
    create(&client, ns, pvc("static", Some(""), "2Gi")).await;
    let st = wait_for(
        &client,
        "PersistentVolumeClaim",
        ns,
        "static",
        "Bound",
        |c| c["status"]["phase"] == "Bound",
    )
    .await;
    assert_eq!(st["spec"]["volumeName"], "static-pv");

    // Reclaim: deleting the pod and claim deletes the volume and its folder.
    api(&client, "Pod", ns)
        .delete("mover", &DeleteParams::default())
        .await
        .unwrap();
    api(&client, "PersistentVolumeClaim", ns)
        .delete("later", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&client, "PersistentVolume", None, pv_name).await;
    let deadline = Instant::now() + PATIENCE;
    while folder.exists() {
        assert!(
            Instant::now() < deadline,
            "{} was never removed",
            folder.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A Retain volume is Released instead.
    api(&client, "PersistentVolumeClaim", ns)
        .delete("static", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(
        &client,
        "PersistentVolume",
        None,
        "static-pv",
        "Released",
        |pv| pv["status"]["phase"] == "Released",
    )
    .await;
    sandbox.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_and_daemonsets_cover_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new("jobs", dir.path().join("state")))
        .await
        .unwrap();
    let client = client_for(dir.path(), &sandbox).await;
    let ns = Some("default");
    create(
        &client,
        ns,
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
               "spec": {"completions": 2, "template": {"spec": {"restartPolicy": "Never",
                        "containers": [{"name": "m", "image": "busybox", "command": ["true"]}]}}}}),
    )
    .await;
    let job = wait_for(&client, "Job", ns, "migrate", "Complete", |j| {
        condition_true(j, "Complete")
    })
    .await;
    assert_eq!(job["status"]["succeeded"], 2);
    assert!(job["status"]["completionTime"].is_string());
    assert!(condition_true(&job, "SuccessCriteriaMet"));
    let pods = list(&client, "Pod", ns, "job-name=migrate").await;
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }

    // A bare pod with restartPolicy Never is not a Job's: it keeps running.
    create(
        &client,
        ns,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
               "spec": {"restartPolicy": "Never", "containers": [{"name": "s", "image": "busybox", "command": ["sleep", "3600"]}]}}),
    )
    .await;
    wait_for(&client, "Pod", ns, "bare", "Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;

    create(
        &client,
        Some("kube-system"),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
               "spec": {"selector": {"matchLabels": {"app": "agent"}},
                        "template": {"metadata": {"labels": {"app": "agent"}},
                                     "spec": {"containers": [{"name": "a", "image": "fluent-bit:3"}]}}}}),
    )
    .await;
    let ds = wait_for(
        &client,
        "DaemonSet",
        Some("kube-system"),
        "agent",
        "ready on each worker",
        |d| d["status"]["numberReady"] == 2 && d["status"]["desiredNumberScheduled"] == 2,
    )
    .await;
    assert_eq!(ds["status"]["observedGeneration"], 1);
    let agents = list(&client, "Pod", Some("kube-system"), "app=agent").await;
    let nodes: std::collections::BTreeSet<&str> = agents
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(nodes.len(), 2);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_copy_volumes_and_restore_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sandbox = Sandbox::start(SandboxConfig::new("prod", &state).with_demo_storage())
        .await
        .unwrap();
    let client = client_for(dir.path(), &sandbox).await;
    let ns = Some("default");
    let classes = list(&client, "StorageClass", None, "").await;
    assert_eq!(classes.len(), 1, "{classes:#?}");
    assert_eq!(classes[0]["metadata"]["name"], "ebs-sc");
    assert_eq!(classes[0]["provisioner"], "ebs.csi.aws.com");
    assert_eq!(classes[0]["parameters"]["type"], "gp3");

    create(&client, ns, pvc("data", None, "1Gi")).await;
    create(&client, ns, mover_pod("app", "data")).await;
    let claim = wait_for(&client, "PersistentVolumeClaim", ns, "data", "Bound", |c| {
        c["status"]["phase"] == "Bound"
    })
    .await;
    assert_eq!(claim["spec"]["storageClassName"], "ebs-sc");
    let pv = get(
        &client,
        "PersistentVolume",
        None,
        claim["spec"]["volumeName"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(pv["spec"]["csi"]["driver"], "ebs.csi.aws.com");
    let folder = volume_folder(&state, &pv);
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("sub/hello.txt"), b"hello from prod").unwrap();

    let snaps = api(&client, "VolumeSnapshot", ns);
    let snap: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot", "metadata": {"name": "snap-1"},
        "spec": {"source": {"persistentVolumeClaimName": "data"}}}))
    .unwrap();
    snaps.create(&PostParams::default(), &snap).await.unwrap();
    let snap = wait_for(&client, "VolumeSnapshot", ns, "snap-1", "readyToUse", |s| {
        s["status"]["readyToUse"] == true
    })
    .await;
    let content_name = snap["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap();
    let content = get(&client, "VolumeSnapshotContent", None, content_name)
        .await
        .unwrap();
    assert_eq!(content["spec"]["driver"], "ebs.csi.aws.com");
    assert_eq!(content["spec"]["volumeSnapshotClassName"], "csi-aws-vsc");
    assert_eq!(content["status"]["readyToUse"], true);
    let handle = content["status"]["snapshotHandle"].as_str().unwrap();
    let snap_folder = state.join("volumes").join(handle);
    assert_eq!(
        std::fs::read(snap_folder.join("sub/hello.txt")).unwrap(),
        b"hello from prod"
    );

    // The snapshot is a copy: later writes to the volume do not change it.
    std::fs::write(folder.join("sub/hello.txt"), b"changed").unwrap();

    let mut restored = pvc("restored", None, "1Gi");
    restored["spec"]["dataSource"] =
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap-1"});
    create(&client, ns, restored).await;
    create(&client, ns, mover_pod("restorer", "restored")).await;
    let claim = wait_for(
        &client,
        "PersistentVolumeClaim",
        ns,
        "restored",
        "Bound",
        |c| c["status"]["phase"] == "Bound",
    )
    .await;
    let pv = get(
        &client,
        "PersistentVolume",
        None,
        claim["spec"]["volumeName"].as_str().unwrap(),
    )
    .await
    .unwrap();
    let restored_folder = volume_folder(&state, &pv);
    assert_eq!(
        std::fs::read(restored_folder.join("sub/hello.txt")).unwrap(),
        b"hello from prod"
    );
    wait_for(&client, "Pod", ns, "restorer", "Running", |p| {
        p["status"]["phase"] == "Running"
    })
    .await;

    // Deleting the snapshot deletes its content and folder (deletionPolicy Delete).
    snaps
        .delete("snap-1", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&client, "VolumeSnapshotContent", None, content_name).await;
    assert!(!snap_folder.exists());
    sandbox.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_loads_the_shop_idempotently_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let sandbox = Sandbox::start(SandboxConfig::new("prod", &state).with_demo_storage())
        .await
        .unwrap();
    let client = client_for(dir.path(), &sandbox).await;
    let opts = SeedOptions {
        files: 8,
        file_size: 64 * 1024,
        ..SeedOptions::default()
    };
    let summary = seed(&client, &state, &opts).await.unwrap();
    assert_eq!(summary.namespace, "shop");
    assert!(summary.objects >= 20, "{summary:?}");
    assert!(summary.bytes >= 8 * 64 * 1024, "{summary:?}");
    let ns = Some("shop");

    // The claim got the default class before the scheduler looked at it: no detour.
    let events = list(&client, "Event", ns, "").await;
    assert!(
        !events.iter().any(|e| e["reason"] == "FailedScheduling"),
        "{events:#?}"
    );

    let pg = &summary.volumes[0].1;
    assert_eq!(
        std::fs::read(pg.join("pgdata/PG_VERSION")).unwrap(),
        b"16\n"
    );
    assert_eq!(
        std::fs::metadata(pg.join("pgdata/base/16384/16385"))
            .unwrap()
            .len(),
        64 * 1024
    );
    assert!(pg.join("pgdata/pg_wal/000000010000000000000001").is_file());
    let redis = &summary.volumes[1].1;
    assert!(
        std::fs::read(redis.join("dump.rdb"))
            .unwrap()
            .starts_with(b"REDIS")
    );
    assert!(
        redis
            .join("appendonlydir/appendonly.aof.manifest")
            .is_file()
    );
    // The folders are the claims' volumes.
    for (claim, folder) in &summary.volumes {
        let c = get(&client, "PersistentVolumeClaim", ns, claim)
            .await
            .unwrap();
        assert_eq!(c["status"]["phase"], "Bound");
        assert_eq!(c["spec"]["storageClassName"], "ebs-sc");
        let pv = get(
            &client,
            "PersistentVolume",
            None,
            c["spec"]["volumeName"].as_str().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(&volume_folder(&state, &pv), folder);
    }

    for d in ["web", "redis"] {
        wait_for(&client, "Deployment", ns, d, "available", |d| {
            condition_true(d, "Available")
        })
        .await;
    }
    wait_for(&client, "StatefulSet", ns, "postgres", "ready", |s| {
        s["status"]["readyReplicas"] == 1
    })
    .await;
    let policies: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "shop",
        &ar("shop.example.com/v1", "BackupPolicy", "backuppolicies"),
    );
    assert_eq!(
        policies.get("nightly").await.unwrap().data["spec"]["retentionDays"],
        14
    );
    for (api_version, kind, plural, name) in [
        ("v1", "ConfigMap", "configmaps", "shop-config"),
        ("v1", "Secret", "secrets", "postgres-credentials"),
        ("v1", "Service", "services", "web"),
        ("v1", "ServiceAccount", "serviceaccounts", "shop-app"),
        ("networking.k8s.io/v1", "Ingress", "ingresses", "shop"),
        (
            "networking.k8s.io/v1",
            "NetworkPolicy",
            "networkpolicies",
            "postgres-from-web",
        ),
        (
            "autoscaling/v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            "web",
        ),
        (
            "policy/v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            "web",
        ),
        ("rbac.authorization.k8s.io/v1", "Role", "roles", "shop-app"),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "rolebindings",
            "shop-app",
        ),
        ("batch/v1", "CronJob", "cronjobs", "db-backup"),
    ] {
        let a: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "shop", &ar(api_version, kind, plural));
        assert!(
            a.get_opt(name).await.unwrap().is_some(),
            "{kind} {name} missing"
        );
    }

    // Seeding again updates rather than fails.
    let again = seed(&client, &state, &opts).await.unwrap();
    assert_eq!(again.volumes, summary.volumes);

    // A restart keeps objects, statuses, bindings and files; no pod is recreated.
    wait_for(&client, "Deployment", ns, "web", "rolled out", |d| {
        rolled_out(d, 2)
    })
    .await;
    let mut before: Vec<String> = list(&client, "Pod", ns, "")
        .await
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    before.sort();
    sandbox.shutdown().await.unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new("prod", &state).with_demo_storage())
        .await
        .unwrap();
    let client = client_for(dir.path(), &sandbox).await;
    let pods = list(&client, "Pod", ns, "").await;
    let mut after: Vec<String> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    after.sort();
    assert_eq!(before, after);
    assert!(
        pods.iter().all(|p| p["status"]["phase"] == "Running"),
        "{pods:#?}"
    );
    let d = get(&client, "Deployment", ns, "web").await.unwrap();
    assert!(rolled_out(&d, 2), "{d:#?}");
    for (claim, folder) in &summary.volumes {
        let c = get(&client, "PersistentVolumeClaim", ns, claim)
            .await
            .unwrap();
        assert_eq!(c["status"]["phase"], "Bound");
        assert!(folder.is_dir());
    }
    assert_eq!(
        std::fs::read(pg.join("pgdata/PG_VERSION")).unwrap(),
        b"16\n"
    );
    assert_eq!(list(&client, "Node", None, "").await.len(), 3);
    sandbox.shutdown().await.unwrap();
}

// kubectl: the same helpers as tests/sandbox_kubectl.rs.

fn tool_path(tool: &str) -> PathBuf {
    if tool == "kubectl"
        && let Some(p) = std::env::var_os("FERRY_KUBECTL")
    {
        return PathBuf::from(p);
    }
    let dir = std::env::var_os("FERRY_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/ferry-tools")
        });
    dir.join(tool)
}

/// Runs kubectl in a blocking thread (the sandbox serves on this test's runtime).
async fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let bin = tool_path("kubectl");
    assert!(
        bin.exists(),
        "kubectl not found at {}: run `bash scripts/install-kubectl.sh` (or set FERRY_KUBECTL)",
        bin.display()
    );
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let shown = args.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", kubeconfig.parent().unwrap())
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl {shown:?} failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_status_and_wait_for_available() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new("kc", dir.path().join("state")))
        .await
        .unwrap();
    let kc = dir.path().join("kubeconfig");
    write_kubeconfig(&kc, &[sandbox.kubeconfig_entry()]).unwrap();
    let manifest = dir.path().join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  \
         selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    \
         spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n",
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    let out = kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let out = kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=Available",
            "deployment/web",
            "--timeout=60s",
        ],
    )
    .await;
    assert!(out.contains("condition met"), "{out}");
    let out = kubectl(&kc, &["set", "image", "deployment/web", "web=nginx:1.28"]).await;
    assert!(out.contains("image updated"), "{out}");
    let out = kubectl(
        &kc,
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    )
    .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
    )
    .await;
    assert_eq!(
        pods.split_whitespace().collect::<Vec<_>>(),
        ["Running", "Running"],
        "{pods}"
    );

    // A StatefulSet with a claim template and a Job, as kubectl waits for them.
    let manifest = dir.path().join("more.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 2\n  \
         selector:\n    matchLabels: {app: db}\n  template:\n    metadata:\n      labels: {app: db}\n    \
         spec:\n      containers:\n      - name: pg\n        image: postgres:16\n  volumeClaimTemplates:\n  \
         - metadata: {name: data}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {requests: {storage: 1Gi}}\n\
         ---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: once\nspec:\n  template:\n    spec:\n      \
         restartPolicy: Never\n      containers:\n      - name: once\n        image: busybox\n        command: [\"true\"]\n",
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    let out = kubectl(
        &kc,
        &["rollout", "status", "statefulset/db", "--timeout=60s"],
    )
    .await;
    assert!(out.contains("roll out complete: 2 new pods"), "{out}");
    let out = kubectl(
        &kc,
        &[
            "wait",
            "--for=condition=complete",
            "job/once",
            "--timeout=60s",
        ],
    )
    .await;
    assert!(out.contains("condition met"), "{out}");
    let out = kubectl(
        &kc,
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Bound",
            "pvc/data-db-0",
            "pvc/data-db-1",
            "--timeout=60s",
        ],
    )
    .await;
    assert_eq!(out.matches("condition met").count(), 2, "{out}");
    sandbox.shutdown().await.unwrap();
}

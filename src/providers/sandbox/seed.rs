//! `ferry sandbox seed`: a realistic sample application, loaded into a sandbox cluster
//! through the Kubernetes API like any client would, so there is something to back up
//! and migrate.
//!
//! The `shop` namespace (by default) gets a PostgreSQL StatefulSet whose volume holds
//! PostgreSQL-like data files (`PG_VERSION`, `base/<oid>/<relfilenode>`, `pg_wal`
//! segments), a Redis Deployment with a PVC (`dump.rdb`, append-only files), a web
//! Deployment, ConfigMaps, Secrets, Services, an Ingress, a NetworkPolicy, an HPA, a PDB,
//! a ServiceAccount with a Role and RoleBinding, a CRD `backuppolicies.shop.example.com`
//! with a custom resource, and a CronJob.
//!
//! Objects are created, or merge-patched when they exist, so seeding again updates rather
//! than fails. The data files are written once the claims are bound, straight into the
//! volumes' folders (`<sandbox>/volumes/<volumeHandle>/`): the seed is part of the sandbox
//! provider and may know that layout. Their content is deterministic, with some pages
//! repeated and some compressible text, so deduplication and compression have something
//! to do.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// The namespace of the application (`shop`).
    pub namespace: String,
    /// How many PostgreSQL data files (relations and WAL segments) to write (64).
    pub files: usize,
    /// The size of each of those files in bytes (1 MiB), so 64 MiB in all by default.
    pub file_size: u64,
    /// How long to wait for the volumes to be bound (2 minutes).
    pub timeout: Duration,
}

impl Default for SeedOptions {
    fn default() -> SeedOptions {
        SeedOptions {
            namespace: "shop".into(),
            files: 64,
            file_size: 1 << 20,
            timeout: Duration::from_secs(120),
        }
    }
}

/// What a seed did.
#[derive(Debug, Clone)]
pub struct SeedSummary {
    pub namespace: String,
    /// Objects created or updated.
    pub objects: usize,
    /// Data files written into volumes, and their total size.
    pub files: usize,
    pub bytes: u64,
    /// Each seeded claim and the folder holding its volume's contents.
    pub volumes: Vec<(String, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot {what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error(
        "{0} within the time allowed: check the sandbox with `kubectl get pvc,pods -A` and its log"
    )]
    Timeout(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the seed was interrupted: {0}")]
    Internal(String),
}

/// The PostgreSQL database's claim and the Redis claim.
const PG_CLAIM: &str = "data-postgres-0";
const REDIS_CLAIM: &str = "redis-data";

fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn plural_of(kind: &str) -> String {
    match kind {
        "Ingress" => "ingresses".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        "BackupPolicy" => "backuppolicies".into(),
        other => format!("{}s", other.to_lowercase()),
    }
}

/// Creates `obj`, or merge-patches it when it exists.
async fn apply(client: &kube::Client, ns: Option<&str>, obj: Value) -> Result<(), SeedError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1").to_string();
    let kind = obj["kind"].as_str().unwrap_or("").to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let ar = resource(&api_version, &kind, &plural_of(&kind));
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let what = || format!("apply {kind} {name}");
    let dynamic: DynamicObject = serde_json::from_value(obj.clone())
        .map_err(|e| SeedError::Internal(format!("{kind} {name}: {e}")))?;
    match api.create(&PostParams::default(), &dynamic).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&obj))
            .await
            .map(|_| ())
            .map_err(|source| SeedError::Api {
                what: what(),
                source,
            }),
        Err(source) => Err(SeedError::Api {
            what: what(),
            source,
        }),
    }
}

/// The application's objects, in the order they are applied (the CRD before its custom
/// resource).
fn manifests(ns: &str) -> Vec<Value> {
    let part_of = json!({"app.kubernetes.io/part-of": "shop"});
    let labels = |app: &str| json!({"app": app, "app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop"});
    let pg_env = json!([
        {"name": "POSTGRES_USER", "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "POSTGRES_USER"}}},
        {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "POSTGRES_PASSWORD"}}},
        {"name": "POSTGRES_DB", "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "POSTGRES_DB"}}},
        {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
    ]);
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "shop-app", "labels": part_of}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "shop-app", "labels": part_of},
               "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]},
                         {"apiGroups": ["shop.example.com"], "resources": ["backuppolicies"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "shop-app", "labels": part_of},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "shop-app"},
               "subjects": [{"kind": "ServiceAccount", "name": "shop-app", "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-config", "labels": part_of},
               "data": {"SHOP_CURRENCY": "EUR", "SHOP_PAGE_SIZE": "24", "DATABASE_HOST": format!("postgres.{ns}.svc.cluster.local"),
                        "REDIS_URL": format!("redis://redis.{ns}.svc.cluster.local:6379/0"),
                        "features.yaml": "checkout:\n  express: true\n  giftCards: false\nsearch:\n  fuzzy: true\n"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "postgres-init", "labels": labels("postgres")},
               "data": {"init.sql": "CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, created_at timestamptz DEFAULT now());\nCREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, customer_id int REFERENCES customers(id), total_cents int NOT NULL, placed_at timestamptz DEFAULT now());\n"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "postgres-credentials", "labels": labels("postgres")},
               "type": "Opaque", "stringData": {"POSTGRES_USER": "shop", "POSTGRES_PASSWORD": "s3cr3t-sandbox-only", "POSTGRES_DB": "shop"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-secrets", "labels": labels("web")},
               "type": "Opaque", "stringData": {"SESSION_KEY": "b7f1c2d9e4a8f3b6c5d2e1f0a9b8c7d6", "PAYMENT_API_TOKEN": "sandbox_tok_4242424242"}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "postgres", "labels": labels("postgres")},
               "spec": {"clusterIP": "None", "selector": {"app": "postgres"}, "ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis", "labels": labels("redis")},
               "spec": {"selector": {"app": "redis"}, "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": labels("web")},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "postgres", "labels": labels("postgres")},
               "spec": {"serviceName": "postgres", "replicas": 1, "selector": {"matchLabels": {"app": "postgres"}},
                        "template": {"metadata": {"labels": labels("postgres")},
                                     "spec": {"containers": [{"name": "postgres", "image": "postgres:16.4",
                                                              "ports": [{"name": "postgres", "containerPort": 5432}],
                                                              "env": pg_env,
                                                              "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"},
                                                                               {"name": "init", "mountPath": "/docker-entrypoint-initdb.d"}]}],
                                              "volumes": [{"name": "init", "configMap": {"name": "postgres-init"}}]}},
                        "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": labels("postgres")},
                                                  "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}}]}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": REDIS_CLAIM, "labels": labels("redis")},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "redis", "labels": labels("redis")},
               "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": {"app": "redis"}},
                        "template": {"metadata": {"labels": labels("redis")},
                                     "spec": {"containers": [{"name": "redis", "image": "redis:7.2", "args": ["--appendonly", "yes"],
                                                              "ports": [{"name": "redis", "containerPort": 6379}],
                                                              "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                                              "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": REDIS_CLAIM}}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels("web")},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": labels("web")},
                                     "spec": {"serviceAccountName": "shop-app",
                                              "containers": [{"name": "web", "image": "ghcr.io/ferry-demo/shop-web:1.4.2",
                                                              "ports": [{"name": "http", "containerPort": 8080}],
                                                              "envFrom": [{"configMapRef": {"name": "shop-config"}}, {"secretRef": {"name": "web-secrets"}}],
                                                              "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                                                              "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}}]}}}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "shop", "labels": part_of,
                                                                                     "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}},
               "spec": {"ingressClassName": "nginx", "rules": [{"host": "shop.example.com", "http": {"paths": [
                   {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "postgres-from-web", "labels": part_of},
               "spec": {"podSelector": {"matchLabels": {"app": "postgres"}}, "policyTypes": ["Ingress"],
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"protocol": "TCP", "port": 5432}]}]}}),
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web", "labels": labels("web")},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 5,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}),
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "labels": labels("web")},
               "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "db-backup", "labels": labels("db-backup")},
               "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                        "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"metadata": {"labels": labels("db-backup")},
                            "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "pg-dump", "image": "postgres:16.4",
                                "command": ["sh", "-c", "pg_dump -h postgres -U shop shop | gzip > /backup/shop-$(date +%F).sql.gz"],
                                "env": [{"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "POSTGRES_PASSWORD"}}}]}]}}}}}}),
    ]
}

fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "backuppolicies.shop.example.com"},
        "spec": {
            "group": "shop.example.com", "scope": "Namespaced",
            "names": {"plural": "backuppolicies", "singular": "backuppolicy", "kind": "BackupPolicy", "listKind": "BackupPolicyList", "shortNames": ["bp"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "schedule": {"type": "string"}, "retentionDays": {"type": "integer"},
                        "includeVolumes": {"type": "boolean"}, "targets": {"type": "array", "items": {"type": "string"}}}},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}],
        },
    })
}

/// Seeds the application into the cluster `client` reaches; `sandbox_dir` is that
/// sandbox's folder (its volumes live in `volumes/` below it).
pub async fn seed(
    client: &kube::Client,
    sandbox_dir: &Path,
    opts: &SeedOptions,
) -> Result<SeedSummary, SeedError> {
    let ns = opts.namespace.as_str();
    let mut objects = 0;
    apply(
        client,
        None,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"app.kubernetes.io/part-of": "shop"}}}),
    )
    .await?;
    apply(client, None, crd()).await?;
    objects += 2;
    for m in manifests(ns) {
        apply(client, Some(ns), m).await?;
        objects += 1;
    }
    wait_for_crd(client, opts.timeout).await?;
    apply(
        client,
        Some(ns),
        json!({"apiVersion": "shop.example.com/v1", "kind": "BackupPolicy", "metadata": {"name": "nightly", "labels": {"app.kubernetes.io/part-of": "shop"}},
               "spec": {"schedule": "0 3 * * *", "retentionDays": 14, "includeVolumes": true, "targets": ["postgres", "redis"]}}),
    )
    .await?;
    objects += 1;

    let pg = volume_folder(client, sandbox_dir, ns, PG_CLAIM, opts.timeout).await?;
    let redis = volume_folder(client, sandbox_dir, ns, REDIS_CLAIM, opts.timeout).await?;
    let (files, bytes) = {
        let (pg, redis, o) = (pg.clone(), redis.clone(), opts.clone());
        tokio::task::spawn_blocking(move || -> Result<(usize, u64), SeedError> {
            let (f1, b1) = write_postgres(&pg, o.files, o.file_size)?;
            let (f2, b2) = write_redis(&redis, o.file_size)?;
            Ok((f1 + f2, b1 + b2))
        })
        .await
        .map_err(|e| SeedError::Internal(e.to_string()))??
    };
    Ok(SeedSummary {
        namespace: ns.to_string(),
        objects,
        files,
        bytes,
        volumes: vec![(PG_CLAIM.into(), pg), (REDIS_CLAIM.into(), redis)],
    })
}

async fn wait_for_crd(client: &kube::Client, timeout: Duration) -> Result<(), SeedError> {
    let ar = resource(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    );
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let deadline = Instant::now() + timeout;
    loop {
        let crd = api
            .get("backuppolicies.shop.example.com")
            .await
            .map_err(|source| SeedError::Api {
                what: "read the BackupPolicy CRD".into(),
                source,
            })?;
        let established = crd.data["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            });
        if established {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(SeedError::Timeout(
                "the BackupPolicy CRD was not established".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for `claim` to be bound and returns its volume's folder.
async fn volume_folder(
    client: &kube::Client,
    sandbox_dir: &Path,
    ns: &str,
    claim: &str,
    timeout: Duration,
) -> Result<PathBuf, SeedError> {
    let pvcs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    );
    let pvs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("v1", "PersistentVolume", "persistentvolumes"),
    );
    let deadline = Instant::now() + timeout;
    loop {
        let pvc = pvcs.get_opt(claim).await.map_err(|source| SeedError::Api {
            what: format!("read the claim {ns}/{claim}"),
            source,
        })?;
        let volume = pvc.as_ref().and_then(|p| {
            (p.data["status"]["phase"] == "Bound")
                .then(|| p.data["spec"]["volumeName"].as_str().map(str::to_string))
                .flatten()
        });
        if let Some(volume) = volume {
            let pv = pvs.get(&volume).await.map_err(|source| SeedError::Api {
                what: format!("read the volume {volume}"),
                source,
            })?;
            let handle = pv.data["spec"]["csi"]["volumeHandle"]
                .as_str()
                .unwrap_or(volume.as_str())
                .to_string();
            let dir = sandbox_dir.join("volumes").join(handle);
            std::fs::create_dir_all(&dir).map_err(|source| SeedError::Io {
                path: dir.clone(),
                source,
            })?;
            return Ok(dir);
        }
        if Instant::now() > deadline {
            return Err(SeedError::Timeout(format!(
                "the claim {ns}/{claim} was not bound"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small deterministic generator (xorshift64*), so seeds are reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

const PAGE: usize = 8192;

/// One data file of `size` bytes: 8 KiB pages with a header; text rows in every third
/// file (compressible), random tuples elsewhere, and every fourth page a repeat of an
/// earlier one (duplication).
fn relation_file(index: u64, size: u64) -> Vec<u8> {
    let size = size as usize;
    let mut data = vec![0u8; size];
    let pages = size.div_ceil(PAGE);
    for p in 0..pages {
        let start = p * PAGE;
        let end = (start + PAGE).min(size);
        if p % 4 == 3 {
            let src = (p - 3) * PAGE;
            data.copy_within(src..src + (end - start), start);
            continue;
        }
        let page = &mut data[start..end];
        let mut rng = Rng::new(index << 32 | p as u64);
        if index.is_multiple_of(3) {
            let mut text = String::new();
            let mut row = (index as usize * 1000) + p * 40;
            while text.len() < page.len() {
                text.push_str(&format!(
                    "{row:08}|customer-{:05}|customer{:05}@example.com|{}|2024-{:02}-{:02}|EUR|\n",
                    row % 50_000,
                    row % 50_000,
                    (rng.next() % 90_000) + 1_000,
                    rng.next() % 12 + 1,
                    rng.next() % 28 + 1,
                ));
                row += 1;
            }
            page.copy_from_slice(&text.as_bytes()[..page.len()]);
        } else {
            rng.fill(page);
        }
        // A page header: LSN, checksum, flags, lower/upper pointers, as PostgreSQL's.
        if page.len() >= 24 {
            page[..8].copy_from_slice(&((index << 24) | p as u64).to_le_bytes());
            page[8..24].copy_from_slice(&[
                0, 0, 4, 0, 0x1c, 0, 0x40, 0x1f, 0, 0x20, 4, 0x20, 0, 0, 0, 0,
            ]);
        }
    }
    data
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SeedError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| SeedError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, bytes).map_err(|source| SeedError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// PostgreSQL 16's data folder under `pgdata/`: `files` data files of `file_size` bytes
/// (one in eight a WAL segment, the rest relations of the `shop` database, oid 16384)
/// and the small files around them. Returns the files written and their bytes.
fn write_postgres(volume: &Path, files: usize, file_size: u64) -> Result<(usize, u64), SeedError> {
    let root = volume.join("pgdata");
    // A seed again with fewer or smaller files leaves no file of the previous one behind.
    for dir in ["base/16384", "pg_wal"] {
        let dir = root.join(dir);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|source| SeedError::Io {
                path: dir.clone(),
                source,
            })?;
        }
    }
    let mut count = 0;
    let mut bytes = 0u64;
    let mut put = |rel: &str, data: &[u8]| -> Result<(), SeedError> {
        write_file(&root.join(rel), data)?;
        count += 1;
        bytes += data.len() as u64;
        Ok(())
    };
    put("PG_VERSION", b"16\n")?;
    put("postgresql.auto.conf", b"# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n")?;
    put("postgresql.conf", b"listen_addresses = '*'\nmax_connections = 100\nshared_buffers = 128MB\nwal_level = replica\nmax_wal_size = 1GB\nmin_wal_size = 80MB\nlog_timezone = 'Etc/UTC'\ndatestyle = 'iso, mdy'\ntimezone = 'Etc/UTC'\nlc_messages = 'en_US.utf8'\ndefault_text_search_config = 'pg_catalog.english'\n")?;
    put("pg_hba.conf", b"local   all             all                                     trust\nhost    all             all             127.0.0.1/32            trust\nhost    all             all             ::1/128                 trust\nhost    all             all             all                     scram-sha-256\n")?;
    put("pg_ident.conf", b"# PostgreSQL User Name Maps\n")?;
    put("postmaster.opts", b"/usr/lib/postgresql/16/bin/postgres\n")?;
    put("global/pg_control", &relation_file(1, PAGE as u64))?;
    put("global/pg_filenode.map", &relation_file(2, 512))?;
    put("global/1262", &relation_file(3, PAGE as u64))?;
    for db in ["1", "4", "5"] {
        put(&format!("base/{db}/PG_VERSION"), b"16\n")?;
        put(
            &format!("base/{db}/1259"),
            &relation_file(10, 2 * PAGE as u64),
        )?;
        put(
            &format!("base/{db}/pg_filenode.map"),
            &relation_file(2, 512),
        )?;
    }
    put("base/16384/PG_VERSION", b"16\n")?;
    put("base/16384/pg_filenode.map", &relation_file(2, 512))?;
    for dir in [
        "pg_commit_ts",
        "pg_dynshmem",
        "pg_notify",
        "pg_replslot",
        "pg_serial",
        "pg_snapshots",
        "pg_stat",
        "pg_stat_tmp",
        "pg_tblspc",
        "pg_twophase",
        "pg_logical/snapshots",
        "pg_logical/mappings",
        "pg_wal/archive_status",
    ] {
        std::fs::create_dir_all(root.join(dir)).map_err(|source| SeedError::Io {
            path: root.join(dir),
            source,
        })?;
    }
    put("pg_xact/0000", &relation_file(4, 8 * PAGE as u64))?;
    put("pg_multixact/offsets/0000", &relation_file(5, PAGE as u64))?;
    put("pg_multixact/members/0000", &relation_file(6, PAGE as u64))?;
    let wal_every = 8;
    let mut wal = 0;
    for i in 0..files {
        let data = relation_file(100 + i as u64, file_size);
        if i % wal_every == wal_every - 1 {
            wal += 1;
            put(&format!("pg_wal/{:08X}{:08X}{:08X}", 1, 0, wal), &data)?;
        } else {
            put(&format!("base/16384/{}", 16385 + i), &data)?;
        }
    }
    Ok((count, bytes))
}

/// Redis's `/data`: `dump.rdb` and the append-only files of Redis 7.
fn write_redis(volume: &Path, file_size: u64) -> Result<(usize, u64), SeedError> {
    let rdb_size = (file_size / 4).max(16 * 1024) as usize;
    let mut rdb = b"REDIS0011\xfa\tredis-ver\x057.2.5\xfa\nredis-bits\xc0@".to_vec();
    let mut rng = Rng::new(7);
    while rdb.len() < rdb_size {
        let n = rng.next() % 100_000;
        rdb.extend_from_slice(
            format!(
                "\x00\x10session:{n:08}\x20{:016x}{:016x}",
                rng.next(),
                rng.next()
            )
            .as_bytes(),
        );
    }
    rdb.truncate(rdb_size);
    rdb.push(0xff);
    let mut aof = String::new();
    let mut i = 0u64;
    while aof.len() < rdb_size / 2 {
        let key = format!("cart:{:06}", i % 5000);
        let value = format!(
            "{{\"items\":{},\"total_cents\":{}}}",
            i % 7 + 1,
            (i * 1337) % 100_000
        );
        aof.push_str(&format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        ));
        i += 1;
    }
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("dump.rdb", rdb.clone()),
        ("appendonlydir/appendonly.aof.1.base.rdb", rdb),
        ("appendonlydir/appendonly.aof.1.incr.aof", aof.into_bytes()),
        ("appendonlydir/appendonly.aof.manifest", b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n".to_vec()),
    ];
    let mut bytes = 0;
    for (rel, data) in &files {
        write_file(&volume.join(rel), data)?;
        bytes += data.len() as u64;
    }
    Ok((files.len(), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_are_deterministic_with_repeats_and_text() {
        let a = relation_file(102, 64 * 1024);
        assert_eq!(a, relation_file(102, 64 * 1024));
        assert_eq!(a.len(), 64 * 1024);
        assert_eq!(&a[PAGE * 3 + 24..PAGE * 4], &a[24..PAGE]);
        assert!(String::from_utf8_lossy(&a[24..200]).contains("@example.com"));
        let b = relation_file(104, 1000);
        assert_eq!(b.len(), 1000);
        assert_ne!(
            relation_file(104, PAGE as u64),
            relation_file(105, PAGE as u64)
        );
    }
}

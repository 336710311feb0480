//! The sandbox: local Kubernetes clusters that speak the Kubernetes API over HTTPS, so
//! that real clients (kube-rs, kubectl, helm) work against them unchanged. Each sandbox
//! has its own CA, bearer tokens, and a state folder holding its certificates, tokens and
//! objects (`state.json`, rewritten atomically a moment after each change).
//!
//! Nothing outside this module may special-case a sandbox: Ferry reaches it through the
//! kubeconfig it writes, like any cluster.
//!
//! - `tls.rs`: certificates and the rustls configuration;
//! - `store.rs`: the object map, resourceVersions, change history, the state file;
//! - `resources.rs`: the served resource types and discovery documents (aggregated too);
//! - `verbs.rs`: API semantics (create, update, patch, delete, finalizers, GC, ...);
//!   `addresses.rs`: Service IPs and node ports;
//! - `select.rs`: selectors (patch formats are the `ferry-patch` crate's);
//! - `dryrun.rs`: server-side dry-run on a throw-away copy of the cluster;
//! - `rbac.rs`: RBAC authorization, the bootstrap policy, the SelfSubject reviews;
//! - `proto.rs`: protobuf bodies of typed clients (Secrets, ConfigMaps, Namespaces,
//!   ServiceAccounts, RBAC roles and bindings, SelfSubject reviews, TokenRequests,
//!   DeleteOptions);
//! - `server.rs`: HTTPS, authentication, routing, watches;
//! - `exec.rs`: pod exec over WebSockets (v5/v4 channel protocols);
//! - `runtime.rs`: container emulation: exec commands run as host processes with the
//!   pod's volumes mapped to host folders;
//! - `ssa.rs`: server-side apply and managedFields;
//! - `users.rs`: users and their bearer tokens (`tokens.json`);
//! - `satokens.rs`: service account tokens (the token controller, TokenRequest);
//! - `table.rs`: the Tables `kubectl get` prints;
//! - `psa.rs`: Pod Security Admission (the namespace's enforced level);
//! - `kubeconfig.rs`: the kubeconfig clients use;
//! - `controllers.rs`, `workloads.rs`, `scheduler.rs`, `autoscaler.rs`, `pods.rs`,
//!   `storage.rs`: the control loop that makes
//!   a sandbox behave like a cluster (workload controllers, scheduling and pod status,
//!   Endpoints, the storage provisioner and snapshots); `changes.rs`: what each controller
//!   has to look at after a burst of changes;
//! - `seed.rs`: `ferry sandbox seed`, a sample shop application loaded through the API;
//! - `cloud.rs`: the sandbox cloud, an EKS/STS-compatible endpoint whose clusters are
//!   sandboxes; `iam.rs`: their EKS token authentication; `sigv4.rs`: SigV4 checks;
//!   `arm.rs`: the cloud's Azure side (OAuth2 tokens, ARM managed clusters).

mod addresses;
#[cfg(feature = "cloud")]
pub mod arm;
mod autoscaler;
mod changes;
#[cfg(feature = "cloud")]
pub mod cloud;
mod controllers;
mod dryrun;
mod exec;
#[cfg(feature = "cloud")]
pub mod iam;
mod kubeconfig;
mod kubelet;
mod logs;
mod oci;
mod pods;
mod process;
mod proto;
mod proto_schema;
mod psa;
mod rbac;
mod resources;
mod runtime;
mod satokens;
mod scheduler;
pub mod seed;
mod select;
mod server;
#[cfg(feature = "cloud")]
pub mod sigv4;
mod sources;
mod ssa;
mod storage;
mod store;
mod table;
mod tls;
mod users;
mod verbs;
mod workloads;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use kubeconfig::{
    Entry as KubeconfigEntry, UserEntry as KubeconfigUser, write as write_kubeconfig,
    write_with_users as write_kubeconfig_with_users,
};
pub use seed::{SeedOptions, SeedSummary, seed};
pub use server::{MAX_BODY, User};
pub use storage::{
    ReclaimPolicy, SnapshotClassSpec, StorageClassSpec, VolumeBindingMode, demo_classes,
};
pub use store::write_atomic;
pub use users::{add_user, users};

use server::Shared;
use store::Store;
use tls::Certificates;
use verbs::Cluster;

/// The file in a sandbox's folder that holds its objects.
pub const STATE_FILE: &str = "state.json";
/// The file in a sandbox's folder that maps bearer tokens to users.
pub const TOKENS_FILE: &str = "tokens.json";

/// How long after a change the state file is rewritten: at least this, or ten times
/// what the last save took (a large store under a stream of writes), at most
/// [`SAVE_AT_MOST`].
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// The longest the state file waits behind the store while objects change.
const SAVE_AT_MOST: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the sandbox state file {path} is damaged ({detail}): move it away, or run \
         `ferry sandbox reset` to start the sandbox empty"
    )]
    State { path: PathBuf, detail: String },
    #[error("cannot set up the sandbox's TLS: {0}")]
    Tls(String),
    #[error("cannot listen on {addr}: {source}. Choose another port or stop what uses it")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the sandbox failed: {0}")]
    Internal(String),
}

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The cluster's name (`prod`, `qa`); it names the context and the node.
    pub name: String,
    /// The folder holding the sandbox's certificates, tokens and objects.
    pub dir: PathBuf,
    /// Where to listen; 127.0.0.1 on an ephemeral port by default.
    pub bind: SocketAddr,
    /// How many worker nodes (`<name>-worker-a`, `-b`, ..., each in its own zone) the
    /// cluster has besides its control-plane node; 2 by default. Created when missing.
    pub workers: usize,
    /// The StorageClasses the cluster starts with (created when missing); the single
    /// default class `standard` by default.
    pub storage_classes: Vec<StorageClassSpec>,
    /// The VolumeSnapshotClasses the cluster starts with; none by default.
    pub snapshot_classes: Vec<SnapshotClassSpec>,
    /// Accept EKS bearer tokens (`k8s-aws-v1.`) as a cluster of the sandbox cloud does;
    /// none by default.
    #[cfg(feature = "cloud")]
    pub aws_iam: Option<iam::AwsIam>,
    /// Images of a single static program the sandbox runs for real, by image name
    /// (`ferry-agent` → the built `ferry-agent` binary), each the image's only program.
    pub images: Vec<(String, PathBuf)>,
    /// The Pod Security level (`baseline`, `restricted`) the API server enforces on
    /// namespaces without a `pod-security.kubernetes.io/enforce` label, as a cluster's
    /// admission configuration sets it (PodSecurity `defaults`); `kube-system` is
    /// exempt. None by default (such namespaces are `privileged`).
    pub pod_security: Option<String>,
}

impl SandboxConfig {
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            name: name.into(),
            dir: dir.into(),
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            workers: 2,
            storage_classes: vec![StorageClassSpec::standard()],
            snapshot_classes: Vec::new(),
            #[cfg(feature = "cloud")]
            aws_iam: None,
            images: Vec::new(),
            pod_security: None,
        }
    }

    /// Enforces Pod Security `level` on every namespace without an `enforce` label
    /// (see [`SandboxConfig::pod_security`]).
    pub fn with_pod_security(mut self, level: impl Into<String>) -> SandboxConfig {
        self.pod_security = Some(level.into());
        self
    }

    /// Runs containers of the images named `name` as the program `binary`.
    pub fn with_image(
        mut self,
        name: impl Into<String>,
        binary: impl Into<PathBuf>,
    ) -> SandboxConfig {
        self.images.push((name.into(), binary.into()));
        self
    }

    /// The storage `ferry sandbox up` gives a cluster of this name ([`demo_classes`]):
    /// AWS-like classes on `prod` and `qa`, `standard` elsewhere.
    pub fn with_demo_storage(mut self) -> SandboxConfig {
        let (classes, snapshot_classes) = demo_classes(&self.name);
        self.storage_classes = classes;
        self.snapshot_classes = snapshot_classes;
        self
    }
}

#[derive(Serialize, Deserialize)]
struct TokenEntry {
    token: String,
    #[serde(flatten)]
    user: User,
}

fn random_token() -> Result<String, SandboxError> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b)
        .map_err(|e| SandboxError::Internal(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(b))
}

/// The tokens in `dir`, creating an `admin` (system:masters) and a read-only `viewer`
/// token the first time.
fn load_or_create_tokens(dir: &Path) -> Result<Vec<TokenEntry>, SandboxError> {
    let path = dir.join(TOKENS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SandboxError::State {
            path,
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let entries = vec![
                TokenEntry {
                    token: random_token()?,
                    user: User {
                        name: "admin".into(),
                        groups: vec!["system:masters".into(), "system:authenticated".into()],
                    },
                },
                TokenEntry {
                    token: random_token()?,
                    user: User {
                        name: "viewer".into(),
                        groups: vec!["system:authenticated".into()],
                    },
                },
            ];
            let text = serde_json::to_vec_pretty(&entries)
                .map_err(|e| SandboxError::Internal(e.to_string()))?;
            // Created 0600 by write_atomic.
            write_atomic(&path, &text)?;
            Ok(entries)
        }
        Err(source) => Err(SandboxError::Io { path, source }),
    }
}

/// The kubeconfig entry of the sandbox saved in `dir`, served at `server`.
pub fn saved_entry(name: &str, dir: &Path, server: &str) -> Result<KubeconfigEntry, SandboxError> {
    let tokens = load_or_create_tokens(dir)?;
    let ca_path = dir.join(tls::CA_CERT);
    let ca_pem = std::fs::read_to_string(&ca_path).map_err(|source| SandboxError::Io {
        path: ca_path,
        source,
    })?;
    Ok(KubeconfigEntry {
        cluster: name.to_string(),
        server: server.to_string(),
        ca_pem,
        token: tokens
            .into_iter()
            .find(|t| t.user.name == "admin")
            .map(|t| t.token)
            .unwrap_or_default(),
    })
}

/// A running sandbox. Stop it with [`Sandbox::shutdown`], which saves its state.
pub struct Sandbox {
    name: String,
    addr: SocketAddr,
    certs: Certificates,
    tokens: Vec<TokenEntry>,
    shared: Arc<Shared>,
    state_path: PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Writes the store to the state file when it changed. The store is copied under the
/// cluster's lock and encoded and written without it.
fn save_if_dirty(shared: &Shared, path: &Path, force: bool) -> Result<(), SandboxError> {
    let state = {
        let mut c = shared.cluster.lock();
        if !c.store.take_dirty() && !force {
            return Ok(());
        }
        c.store.state()
    };
    let r = state.encode().and_then(|bytes| write_atomic(path, &bytes));
    if r.is_err() {
        shared.cluster.lock().store.mark_dirty();
    }
    r
}

impl Sandbox {
    /// Starts a sandbox: loads (or creates) its folder, binds, and serves in the current
    /// tokio runtime.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| SandboxError::Io {
            path: dir.clone(),
            source,
        })?;
        for (name, binary) in &config.images {
            runtime::hold_image(name, binary.clone());
        }
        // Containers an earlier, killed run of this sandbox left behind.
        {
            let dir = dir.clone();
            let _ = tokio::task::spawn_blocking(move || oci::sweep(&dir)).await;
        }
        let certs = Certificates::load_or_create(&dir, &config.name)?;
        let tokens = load_or_create_tokens(&dir)?;
        let state_path = dir.join(STATE_FILE);
        let store = Store::load(&state_path)?;
        let mut cluster = Cluster::new(store, &config.name, &certs.ca_pem, &dir);
        cluster.sa_key = satokens::load_or_create_key(&dir)?;
        cluster.pod_security = config.pod_security.clone();
        cluster
            .bootstrap()
            .map_err(|e| SandboxError::Internal(e.message))?;
        controllers::install(&mut cluster, &config)
            .map_err(|e| SandboxError::Internal(e.message))?;
        rbac::bootstrap(&mut cluster).map_err(|e| SandboxError::Internal(e.message))?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| SandboxError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.bind,
            source,
        })?;
        let shared = Arc::new(Shared {
            cluster: Mutex::new(cluster),
            tokens: users::TokenMap::new(&dir, &tokens),
            server_url: format!("https://{addr}"),
            #[cfg(feature = "cloud")]
            aws_iam: config.aws_iam.clone(),
            execs: Default::default(),
            kubelet: Default::default(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(certs.server_config()?);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);

        let accept = {
            let shared = shared.clone();
            let mut stop_rx = stop_rx.clone();
            tokio::spawn(async move {
                loop {
                    let tcp = tokio::select! {
                        _ = stop_rx.changed() => return,
                        r = listener.accept() => match r {
                            Ok((tcp, _)) => tcp,
                            Err(e) => {
                                tracing::warn!("sandbox accept failed: {e}");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    let acceptor = acceptor.clone();
                    let shared = shared.clone();
                    let mut stop_rx = stop_rx.clone();
                    tokio::spawn(async move {
                        let tls = match tokio::time::timeout(
                            Duration::from_secs(10),
                            acceptor.accept(tcp),
                        )
                        .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!("sandbox TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => return,
                        };
                        let service = hyper::service::service_fn(move |req| {
                            server::handle(shared.clone(), req)
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .with_upgrades();
                        tokio::select! {
                            r = conn => if let Err(e) = r {
                                tracing::debug!("sandbox connection ended: {e}");
                            },
                            _ = stop_rx.changed() => {}
                        }
                    });
                }
            })
        };
        let control = controllers::spawn(shared.clone(), stop_rx.clone());
        let saver = {
            let shared = shared.clone();
            let path = state_path.clone();
            let mut stop_rx = stop_rx;
            tokio::spawn(async move {
                let mut wait = SAVE_EVERY;
                loop {
                    tokio::select! {
                        _ = stop_rx.changed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    let shared = shared.clone();
                    let path = path.clone();
                    let started = std::time::Instant::now();
                    let r =
                        tokio::task::spawn_blocking(move || save_if_dirty(&shared, &path, false))
                            .await;
                    if let Ok(Err(e)) = r {
                        tracing::warn!("sandbox state not saved: {e}");
                    }
                    wait = started
                        .elapsed()
                        .saturating_mul(10)
                        .clamp(SAVE_EVERY, SAVE_AT_MOST);
                }
            })
        };
        tracing::info!(name = %config.name, %addr, "sandbox started");
        Ok(Sandbox {
            name: config.name,
            addr,
            certs,
            tokens,
            shared,
            state_path,
            stop,
            tasks: vec![accept, control, saver],
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.certs.ca_pem
    }

    /// The token of the user named `user` (`admin`, `viewer`, or one added).
    pub fn token(&self, user: &str) -> Option<&str> {
        self.tokens
            .iter()
            .find(|t| t.user.name == user)
            .map(|t| t.token.as_str())
    }

    /// Adds the user `name` in `groups` (and `system:authenticated`), saved in
    /// `tokens.json`, and returns its bearer token, which this sandbox accepts at once.
    /// What the user may do is up to the RBAC objects in the cluster.
    pub fn add_user(&mut self, name: &str, groups: &[String]) -> Result<String, SandboxError> {
        let dir = self
            .state_path
            .parent()
            .ok_or_else(|| SandboxError::Internal("the state file has no folder".into()))?
            .to_path_buf();
        let (token, user) = users::add_user(&dir, name, groups)?;
        self.shared.tokens.insert(token.clone(), user.clone());
        self.tokens.push(TokenEntry {
            token: token.clone(),
            user,
        });
        Ok(token)
    }

    /// Enforces Pod Security `level` on namespaces without an `enforce` label from now
    /// on (None: no default), as a cluster's admission configuration changed by its
    /// administrator would: pods already running stay (see
    /// [`SandboxConfig::with_pod_security`]).
    pub fn set_pod_security(&self, level: Option<&str>) {
        self.shared.cluster.lock().pod_security = level.map(str::to_string);
    }

    /// What a kubeconfig needs to reach this sandbox as `admin`.
    pub fn kubeconfig_entry(&self) -> KubeconfigEntry {
        KubeconfigEntry {
            cluster: self.name.clone(),
            server: self.url(),
            ca_pem: self.certs.ca_pem.clone(),
            token: self.token("admin").unwrap_or_default().to_string(),
        }
    }

    /// Writes the state file now.
    pub fn save(&self) -> Result<(), SandboxError> {
        save_if_dirty(&self.shared, &self.state_path, true)
    }

    /// Stops serving (open connections and watches end) and saves the state.
    pub async fn shutdown(self) -> Result<(), SandboxError> {
        let _ = self.stop.send(true);
        self.shared.execs.stop().await;
        self.shared.kubelet.stop().await;
        for t in self.tasks {
            let _ = t.await;
        }
        let shared = self.shared.clone();
        let path = self.state_path.clone();
        tokio::task::spawn_blocking(move || save_if_dirty(&shared, &path, true))
            .await
            .map_err(|e| SandboxError::Internal(e.to_string()))?
    }
}

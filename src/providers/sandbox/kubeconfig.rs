//! Kubeconfig files for sandboxes: one cluster, user and context per sandbox, the CA
//! embedded and a bearer token. Written as JSON, which kubectl and kube-rs read as YAML.
//!
//! Owns the kubeconfig format; knows nothing of the server.

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

use super::SandboxError;
use super::store::write_atomic;

/// What a kubeconfig needs to reach one sandbox.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The sandbox's name; the context is `ferry-<name>`.
    pub cluster: String,
    /// `https://127.0.0.1:<port>`
    pub server: String,
    pub ca_pem: String,
    pub token: String,
}

impl Entry {
    pub fn context_name(&self) -> String {
        format!("ferry-{}", self.cluster)
    }
}

/// A further user of one sandbox: its context is `ferry-<cluster>-<user>`.
#[derive(Debug, Clone)]
pub struct UserEntry {
    /// The sandbox's name, as in its [`Entry`].
    pub cluster: String,
    pub user: String,
    pub token: String,
}

impl UserEntry {
    pub fn context_name(&self) -> String {
        format!("ferry-{}-{}", self.cluster, self.user)
    }
}

/// The kubeconfig document for `entries` (the first is the current context) and a context
/// for each of `users` whose sandbox is among `entries`.
pub fn document_with_users(entries: &[Entry], users: &[UserEntry]) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let clusters: Vec<Value> = entries
        .iter()
        .map(|e| json!({"name": e.context_name(), "cluster": {"server": e.server, "certificate-authority-data": b64(&e.ca_pem)}}))
        .collect();
    let users_doc: Vec<Value> = entries
        .iter()
        .map(|e| json!({"name": format!("{}-admin", e.context_name()), "user": {"token": e.token}}))
        .collect();
    let contexts: Vec<Value> = entries
        .iter()
        .map(|e| json!({"name": e.context_name(), "context": {"cluster": e.context_name(), "user": format!("{}-admin", e.context_name()), "namespace": "default"}}))
        .collect();
    let (mut users_out, mut contexts) = (users_doc, contexts);
    for u in users {
        if !entries.iter().any(|e| e.cluster == u.cluster) {
            continue;
        }
        let name = u.context_name();
        users_out.push(json!({"name": name, "user": {"token": u.token}}));
        contexts.push(json!({"name": name, "context": {"cluster": format!("ferry-{}", u.cluster), "user": name, "namespace": "default"}}));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users_out,
        "contexts": contexts,
        "current-context": entries.first().map(Entry::context_name).unwrap_or_default(),
    })
}

/// Writes the kubeconfig for `entries` to `path` atomically, readable by the owner only.
pub fn write(path: &Path, entries: &[Entry]) -> Result<(), SandboxError> {
    write_with_users(path, entries, &[])
}

/// [`write()`], with a context for each of `users`.
pub fn write_with_users(
    path: &Path,
    entries: &[Entry],
    users: &[UserEntry],
) -> Result<(), SandboxError> {
    let text = serde_json::to_vec_pretty(&document_with_users(entries, users))
        .map_err(|e| SandboxError::Internal(e.to_string()))?;
    // write_atomic creates the file 0600.
    write_atomic(path, &text)
}

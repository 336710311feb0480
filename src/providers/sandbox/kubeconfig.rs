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

/// The kubeconfig document for `entries`; the first is the current context.
pub fn document(entries: &[Entry]) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let clusters: Vec<Value> = entries
        .iter()
        .map(|e| json!({"name": e.context_name(), "cluster": {"server": e.server, "certificate-authority-data": b64(&e.ca_pem)}}))
        .collect();
    let users: Vec<Value> = entries
        .iter()
        .map(|e| json!({"name": format!("{}-admin", e.context_name()), "user": {"token": e.token}}))
        .collect();
    let contexts: Vec<Value> = entries
        .iter()
        .map(|e| json!({"name": e.context_name(), "context": {"cluster": e.context_name(), "user": format!("{}-admin", e.context_name()), "namespace": "default"}}))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": entries.first().map(Entry::context_name).unwrap_or_default(),
    })
}

/// Writes the kubeconfig for `entries` to `path` atomically, readable by the owner only.
pub fn write(path: &Path, entries: &[Entry]) -> Result<(), SandboxError> {
    let text = serde_json::to_vec_pretty(&document(entries))
        .map_err(|e| SandboxError::Internal(e.to_string()))?;
    write_atomic(path, &text)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        SandboxError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

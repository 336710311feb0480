//! The policy in a repository: `policy/<name>` files (encrypted [`PolicyEnvelope`]s)
//! and the pin in the repository config that makes a policy required.

use super::document::Policy;
use super::signing::{self, AdminKey, PolicyBody, PolicyEnvelope, Verified};
use super::{PolicyError, Result};
use crate::engine::Repository;
use crate::engine::backend::FileKind;
use crate::engine::repo::PolicyPin;

/// The verified policy a repository holds.
#[derive(Debug, Clone)]
pub struct ActivePolicy {
    /// The file name of the newest version.
    pub name: String,
    pub body: PolicyBody,
    /// `ed25519:<hex>` of whoever signed it.
    pub signer: String,
    pub policy: Policy,
    /// Every version, oldest first: (file name, version, signer).
    pub history: Vec<(String, u64, String)>,
}

impl From<Verified> for ActivePolicy {
    fn from(v: Verified) -> Self {
        ActivePolicy {
            name: v.name,
            body: v.body,
            signer: v.signer,
            policy: v.policy,
            history: v.history,
        }
    }
}

/// Reads every policy file of `repo`.
fn read_all(repo: &Repository) -> Result<Vec<(String, PolicyEnvelope)>> {
    let files = repo
        .block_on(repo.backend().list(FileKind::Policy))
        .map_err(crate::engine::Error::from)?;
    let mut out = Vec::new();
    for f in files {
        let plain = match repo.load_encrypted(FileKind::Policy, &f.name) {
            Ok(p) => p,
            Err(crate::engine::Error::Damaged { detail, .. }) => {
                return Err(PolicyError::Tampered {
                    name: f.name,
                    detail: format!("it does not decrypt ({detail})"),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let env: PolicyEnvelope =
            serde_json::from_slice(&plain).map_err(|e| PolicyError::Tampered {
                name: f.name.clone(),
                detail: format!("it is not a policy envelope ({e})"),
            })?;
        out.push((f.name, env));
    }
    Ok(out)
}

/// The repository's verified policy; None when it has none and requires none.
pub fn load(repo: &Repository) -> Result<Option<ActivePolicy>> {
    let config = repo.read_config()?;
    let files = read_all(repo)?;
    let pin = config.policy.as_ref().map(|p| (p.head.as_str(), p.seq));
    let verified = signing::verify_chain(&config.id, files, pin)?;
    if let Some(v) = &verified {
        tracing::debug!(policy = %v.name, seq = v.body.seq, "policy verified");
        if config.policy.as_ref().is_none_or(|p| p.seq < v.body.seq) {
            // A crash between storing a version and pinning it: the signed chain is
            // newer than the pin. It is valid; pin it so it cannot be rolled back.
            tracing::warn!(policy = %v.name, "pinning a policy version the config did not require yet");
            repo.write_policy_pin(PolicyPin {
                head: v.name.clone(),
                seq: v.body.seq,
            })?;
        }
    }
    Ok(verified.map(ActivePolicy::from))
}

/// Signs `document` with `key` as the next version of the repository's policy, stores
/// it and pins it. The current policy (if any) must verify and list `key` as an admin;
/// a first policy must list `key` among its own admins.
pub fn store(repo: &Repository, document: &str, key: &AdminKey) -> Result<ActivePolicy> {
    let policy = Policy::parse(document)?;
    let current = load(repo)?;
    let admins_now = match &current {
        Some(c) => c.body.admins.clone(),
        None => policy.admins.clone(),
    };
    if !admins_now.contains(&key.public()) {
        return Err(PolicyError::NotAnAdmin {
            key: key.public(),
            admins: admins_now.join(", "),
        });
    }
    let body = PolicyBody {
        version: signing::ENVELOPE_VERSION,
        repository: repo.config().id,
        seq: current.as_ref().map_or(1, |c| c.body.seq + 1),
        previous: current.as_ref().map(|c| c.name.clone()),
        admins: policy.admins.clone(),
        time: chrono::Utc::now(),
        signer_label: key.label.clone(),
        document: document.to_string(),
    };
    let (name, envelope) = PolicyEnvelope::sign(&body, key)?;
    let plain = serde_json::to_vec(&envelope).map_err(|e| PolicyError::Invalid(e.to_string()))?;
    repo.save_encrypted(FileKind::Policy, &name, &plain)?;
    repo.write_policy_pin(PolicyPin {
        head: name.clone(),
        seq: body.seq,
    })?;
    tracing::info!(policy = %name, seq = body.seq, signer = %key.public(), "policy stored");
    let mut history = current.map(|c| c.history).unwrap_or_default();
    history.push((name.clone(), body.seq, key.public()));
    Ok(ActivePolicy {
        name,
        body,
        signer: key.public(),
        policy,
        history,
    })
}

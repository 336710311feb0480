//! The policy in a repository: `policy/<name>` files (encrypted [`PolicyEnvelope`]s)
//! and the pin in the repository config that makes a policy required.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::document::Policy;
use super::signing::{self, AdminKey, PolicyBody, PolicyEnvelope, Verified};
use super::{PolicyError, Result};
use ferry_repo::Repository;
use ferry_repo::backend::FileKind;
use ferry_repo::repo::PolicyPin;

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
        .map_err(ferry_repo::Error::from)?;
    let mut out = Vec::new();
    for f in files {
        let plain = match repo.load_encrypted(FileKind::Policy, &f.name) {
            Ok(p) => p,
            Err(ferry_repo::Error::Damaged { detail, .. }) => {
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

/// Where this machine remembers the newest policy version it has verified for each
/// repository (set once by the binary: `<state>/policy-seen`); unset, nothing is
/// remembered.
static MEMORY: OnceLock<PathBuf> = OnceLock::new();

/// Makes [`load`] remember, under `dir`, the newest policy version seen per repository
/// and refuse a repository whose policy is older or gone: someone who can write to the
/// repository's storage but holds no administrator key could otherwise remove the
/// newest versions together with the pin in the repository config.
pub fn remember_in(dir: PathBuf) {
    let _ = MEMORY.set(dir);
}

#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    seq: u64,
    head: String,
}

fn seen_file(dir: &Path, repo: &Repository) -> PathBuf {
    dir.join(format!("{}.json", repo.config().id))
}

/// Compares `found` (the verified policy's version and file; None without policy) with
/// what this machine saw last for the repository, and remembers a newer one.
fn check_memory(repo: &Repository, found: Option<(u64, &str)>) -> Result<()> {
    let Some(dir) = MEMORY.get() else {
        return Ok(());
    };
    let path = seen_file(dir, repo);
    let seen: Option<Seen> = match std::fs::read(&path) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable policy memory: replaced");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(PolicyError::Io { path, source }),
    };
    let found_seq = found.map_or(0, |f| f.0);
    if let Some(s) = &seen
        && s.seq > found_seq
    {
        return Err(PolicyError::Forgotten {
            seen: s.seq,
            head: s.head.clone(),
            found: found_seq,
            memory: path,
        });
    }
    let Some((seq, head)) = found else {
        return Ok(());
    };
    if seen.as_ref().is_some_and(|s| s.seq == seq) {
        return Ok(());
    }
    let io = |source| PolicyError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let body = serde_json::to_vec(&Seen {
        seq,
        head: head.to_string(),
    })
    .map_err(|e| PolicyError::Invalid(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

/// The repository's verified policy; None when it has none and requires none.
pub fn load(repo: &Repository) -> Result<Option<ActivePolicy>> {
    let config = repo.read_config()?;
    let files = read_all(repo)?;
    let pin = config.policy.as_ref().map(|p| (p.head.as_str(), p.seq));
    let verified = signing::verify_chain(&config.id, files, pin)?;
    check_memory(
        repo,
        verified.as_ref().map(|v| (v.body.seq, v.name.as_str())),
    )?;
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
    check_memory(repo, Some((body.seq, name.as_str())))?;
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

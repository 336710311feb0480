//! The audit trail: one encrypted record per job or denied attempt in `audit/`.
//!
//! Records are never rewritten. A record's name starts with its UTC time (so names sort
//! in time order) and ends with random digits (so two writers never pick the same name).
//! Each record names the newest record its writer saw (`previous`): a record that names
//! a missing one shows that records were removed.

use serde::{Deserialize, Serialize};

use super::document::Action;
use super::eval::Identity;
use super::{PolicyError, Result};
use ferry_providers::kubeconfig::ClusterIdentity;
use ferry_repo::Repository;
use ferry_repo::backend::FileKind;

/// The record format version.
pub const RECORD_VERSION: u32 = 1;

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The policy refused it; nothing ran.
    Denied,
    Succeeded,
    /// It ran and finished, but some parts failed (see `detail`).
    Partial,
    Failed,
    /// Data was read (a console clone's capture) but the user did not confirm the plan.
    Abandoned,
    /// The user cancelled it while it ran; what it had done stays (see `detail`).
    Cancelled,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Denied => "denied",
            Outcome::Succeeded => "succeeded",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
            Outcome::Cancelled => "cancelled",
        })
    }
}

/// One job or denied attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub version: u32,
    /// The record's file name (filled in when read).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub time: chrono::DateTime<chrono::Utc>,
    /// The newest record the writer saw.
    pub previous: Option<String>,
    /// The operating-system user and host that ran Ferry.
    pub local_user: String,
    pub host: String,
    /// Who the clusters say the user is.
    pub identities: Vec<Identity>,
    pub action: Action,
    /// `cluster/namespace` places, or None (e.g. a backup's target is the repository).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Who the source and target clusters are (server and CA, EKS ARN, AKS resource
    /// ID): what the names above pointed at. Absent in records written before issue 14,
    /// and for a place known only by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cluster: Option<ClusterIdentity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_cluster: Option<ClusterIdentity>,
    /// The policy version that decided (None: no policy).
    pub policy_seq: Option<u64>,
    pub allowed: bool,
    /// The deciding rule (1-based), if a rule decided.
    pub rule: Option<usize>,
    pub reason: String,
    /// What the plan was, in one line.
    pub plan: Option<String>,
    pub snapshot: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub bytes: u64,
    /// How the volumes' data travelled (in-cluster agents or exec through this
    /// machine) and why; absent where no volume data moved, and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_path: Option<String>,
}

impl AuditRecord {
    /// A record of `action` by this machine's user, not yet decided (outcome: denied).
    pub fn new(action: Action) -> AuditRecord {
        AuditRecord {
            version: RECORD_VERSION,
            id: String::new(),
            time: chrono::Utc::now(),
            previous: None,
            local_user: ferry_repo::username(),
            host: ferry_repo::hostname(),
            identities: Vec::new(),
            action,
            from: None,
            to: None,
            from_cluster: None,
            to_cluster: None,
            policy_seq: None,
            allowed: false,
            rule: None,
            reason: String::new(),
            plan: None,
            snapshot: None,
            outcome: Outcome::Denied,
            detail: None,
            bytes: 0,
            data_path: None,
        }
    }
}

fn record_name(time: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let mut r = [0u8; 8];
    ferry_repo::crypto::random_bytes(&mut r).map_err(|e| PolicyError::Repository(e.into()))?;
    Ok(format!(
        "{}-{}",
        time.format("%Y%m%dT%H%M%S%.9fZ"),
        hex::encode(r)
    ))
}

/// The names of the audit records, oldest first.
fn names(repo: &Repository) -> Result<Vec<String>> {
    let mut n: Vec<String> = repo
        .block_on(repo.backend().list(FileKind::Audit))
        .map_err(ferry_repo::Error::from)?
        .into_iter()
        .map(|f| f.name)
        .collect();
    n.sort();
    Ok(n)
}

/// Appends `record` (its `id`, `previous` and `version` are set here); returns its name.
pub fn append(repo: &Repository, mut record: AuditRecord) -> Result<String> {
    record.version = RECORD_VERSION;
    record.previous = names(repo)?.pop();
    let name = record_name(record.time)?;
    record.id = String::new();
    let plain = serde_json::to_vec(&record).map_err(|e| PolicyError::AuditDamaged {
        name: name.clone(),
        detail: e.to_string(),
    })?;
    repo.save_encrypted(FileKind::Audit, &name, &plain)?;
    tracing::info!(record = %name, action = %record.action, outcome = %record.outcome, "audit record written");
    Ok(name)
}

/// Every record, oldest first, and warnings about gaps in the trail.
pub fn read(repo: &Repository) -> Result<(Vec<AuditRecord>, Vec<String>)> {
    let names = names(repo)?;
    let mut out = Vec::with_capacity(names.len());
    for name in &names {
        let plain = match repo.load_encrypted(FileKind::Audit, name) {
            Ok(p) => p,
            Err(ferry_repo::Error::Damaged { detail, .. }) => {
                return Err(PolicyError::AuditDamaged {
                    name: name.clone(),
                    detail,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut r: AuditRecord =
            serde_json::from_slice(&plain).map_err(|e| PolicyError::AuditDamaged {
                name: name.clone(),
                detail: e.to_string(),
            })?;
        r.id = name.clone();
        out.push(r);
    }
    let mut warnings = Vec::new();
    for r in &out {
        if let Some(p) = &r.previous
            && names.binary_search(p).is_err()
        {
            warnings.push(format!(
                "audit record {} follows record {p}, which is missing: records were removed from the repository",
                r.id
            ));
        }
    }
    Ok((out, warnings))
}

//! Who may move what where: environments, rules, signed policies, scrubbing, the audit
//! trail and the RBAC that makes clusters enforce the same boundaries.
//!
//! Owns: the policy document (`document.rs`, YAML), its evaluation (`eval.rs`), scrub
//! rules applied to captured objects (`scrub.rs`), administrator keys and the signed
//! policy chain (`signing.rs`), the policy and audit files in a repository (`store.rs`,
//! `audit.rs`), identities from `SelfSubjectReview` (`identity.rs`) and the RBAC it
//! emits (`rbac.rs`).
//!
//! Must not: print or read the terminal (the CLI does), or decide what a job does
//! beyond allow/deny and scrubbing. File formats are in docs/FORMAT.md, "Policies and
//! audit".
//!
//! Errors: every [`PolicyError`] says what happened and what to do next. Nothing here
//! panics on input: policy files, key files and audit records are untrusted.

pub mod audit;
pub mod document;
pub mod eval;
pub mod gate;
pub mod identity;
pub mod rbac;
pub mod scrub;
pub mod signing;
pub mod store;

pub use document::{Action, Effect, Policy, ScrubMode, ScrubRule, Subject};
pub use eval::{Decision, Identity, Location, Request};
pub use signing::AdminKey;
pub use store::ActivePolicy;

use std::path::PathBuf;

/// What went wrong with a policy, a key, an identity or the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is not valid YAML: {0}. Fix the file and run `ferry policy set` again")]
    Syntax(String),
    #[error("the policy is not valid: {0}. Fix the file and run `ferry policy set` again")]
    Invalid(String),
    #[error(
        "the policy document has version {found}, this Ferry understands versions 1 to {supported}: write `version: {supported}` or upgrade Ferry"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error(
        "the repository requires a policy (version {seq}, file policy/{head}) but it is missing: restore the policy/ folder from a copy, or ask an administrator to set it again with `ferry policy set`"
    )]
    Missing { head: String, seq: u64 },
    #[error(
        "policy file policy/{name} is unsigned: nothing is allowed until an administrator removes it from the repository's storage and signs a policy with `ferry policy set FILE --key ADMIN.key`"
    )]
    Unsigned { name: String },
    #[error(
        "policy file policy/{name} was tampered with ({detail}): Ferry refuses to act on this repository; an administrator must remove that file from the repository's storage and re-sign the policy with `ferry policy set`"
    )]
    Tampered { name: String, detail: String },
    #[error(
        "the repository's policy went back from version {pinned} to {found}: a newer policy was removed. Restore the policy/ folder from a copy, or have an administrator sign a new policy with `ferry policy set`"
    )]
    RolledBack { pinned: u64, found: u64 },
    #[error(
        "this machine has verified version {seen} of the repository's policy (policy/{head}) but the repository now holds {}: its newest policy versions were removed from storage. Restore the policy/ folder from a copy, or have an administrator sign a new policy with `ferry policy set`; if an administrator really did remove the policy, delete {} to accept it", if *.found == 0 { "none".to_string() } else { format!("only version {found}") }, .memory.display()
    )]
    Forgotten {
        seen: u64,
        head: String,
        found: u64,
        memory: PathBuf,
    },
    #[error(
        "two policies both follow version {seq} (policy/{a} and policy/{b}): two administrators set the policy at once. An administrator must remove the unwanted file from storage and run `ferry policy set` again"
    )]
    Forked { seq: u64, a: String, b: String },
    #[error(
        "the key {key} is not an administrator of this repository's policy (administrators: {admins}): sign with an administrator's key, or have one add yours to `admins:`"
    )]
    NotAnAdmin { key: String, admins: String },
    #[error(
        "{path} is not an administrator key file ({detail}): create one with `ferry policy keygen`"
    )]
    BadKeyFile { path: PathBuf, detail: String },
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} already exists: choose another file name, or delete it if you really mean to replace that key"
    )]
    KeyExists { path: PathBuf },
    #[error(
        "cannot learn who you are on {cluster}: {detail}. Ferry takes your identity from the cluster's SelfSubjectReview (authentication.k8s.io/v1, Kubernetes 1.28 and later); check the context's credentials with `kubectl auth whoami --context {cluster}`"
    )]
    Identity { cluster: String, detail: String },
    #[error(
        "audit record audit/{name} is damaged ({detail}): run `ferry check` to see whether the repository is damaged"
    )]
    AuditDamaged { name: String, detail: String },
    #[error("no environment is named {0:?}: list them with `ferry policy show`")]
    NoSuchEnvironment(String),
    #[error("{reason}. {}{}", could_text(.could), .unrecorded.as_deref().map(|w| format!(" Warning: {w}")).unwrap_or_default())]
    Denied {
        action: Action,
        /// `rule N: <rule>`, when a rule decided.
        rule: Option<String>,
        reason: String,
        /// The subjects who could do it instead.
        could: Vec<String>,
        /// Why the denial is missing from the audit trail, if it is.
        unrecorded: Option<String>,
    },
    #[error(transparent)]
    Repository(#[from] ferry_repo::Error),
}

fn could_text(could: &[String]) -> String {
    if could.is_empty() {
        "Nobody the policy names may do this; an administrator can change the policy with `ferry policy set`. Nothing was changed.".into()
    } else {
        format!(
            "Who could do it instead: {}. Nothing was changed.",
            could.join(", ")
        )
    }
}

/// Results of this module.
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

//! What is wrong with a request to create a cluster, by field, so that each front end
//! words its own advice: the command line names its flags (`cli::cluster`), the
//! console's new-cluster form its rows (`ui::newcluster`). The providers' checks
//! (`eks::ClusterSpec::validate`, `aks::AksSpec::validate`, [`check_version`]) say what
//! is wrong and what would do, never where the value came from.
//!
//! The same goes for a creation that fails half-way: `EksError::explain` and
//! `AksError::explain` take how the front end's user starts it again; [`AGAIN`] when
//! the caller does not say. Also the Kubernetes version arithmetic both clouds share
//! ([`parse_version`]).

use std::fmt;

/// How the user starts a creation that failed half-way again, when the front end does
/// not word it (see `EksError::explain`, `AksError::explain`).
pub const AGAIN: &str = "create the same cluster again";

/// A part of a cluster request that a front end lets the user set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The new cluster's name.
    Name,
    /// The Kubernetes version (`major.minor`).
    Version,
    /// EKS: the cluster's IAM role.
    RoleArn,
    /// EKS: the cluster's subnets.
    Subnets,
    /// EKS: a node group's IAM role.
    NodeRole,
    /// The node counts of a node group (EKS min, desired, max) or pool (AKS count, and
    /// min and max when it autoscales).
    NodeCounts,
    /// EKS: a node group's taints.
    Taints,
    /// AKS: the resource group.
    ResourceGroup,
    /// AKS: the Azure region.
    Location,
    /// AKS: the node pools' names and modes (one must be a System pool).
    NodePools,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Name => "the cluster name",
            Field::Version => "the Kubernetes version",
            Field::RoleArn => "the cluster role",
            Field::Subnets => "the subnets",
            Field::NodeRole => "the node role",
            Field::NodeCounts => "the node counts",
            Field::Taints => "the node taints",
            Field::ResourceGroup => "the resource group",
            Field::Location => "the location",
            Field::NodePools => "the node pools",
        })
    }
}

/// One thing wrong with a cluster request. Displayed on its own it names no flag or
/// form row; a front end that has them words the advice with `field` and `want`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}; {field} should be {want}")]
pub struct SpecError {
    pub field: Field,
    /// The node group or pool the field belongs to, for per-group fields.
    pub pool: Option<String>,
    /// What is wrong (`"latest" is not a Kubernetes version`).
    pub problem: String,
    /// What would do, as the object of "give" or "set to" (`a version like 1.31`,
    /// `1.31 or newer`).
    pub want: String,
}

impl SpecError {
    pub fn new(field: Field, problem: impl Into<String>, want: impl Into<String>) -> SpecError {
        SpecError {
            field,
            pool: None,
            problem: problem.into(),
            want: want.into(),
        }
    }

    /// The same error, about the node group or pool `pool`.
    pub fn of_pool(mut self, pool: &str) -> SpecError {
        self.pool = Some(pool.into());
        self
    }
}

/// `(major, minor)` of `1.31`, `v1.31.2` or `1.31.2-eks-1234`.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut it = v.split(['.', '-', '+']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.trim_end_matches('+').parse().ok()?;
    Some((major, minor))
}

/// A version that is not readable.
pub fn bad_version(v: &str) -> SpecError {
    SpecError::new(
        Field::Version,
        format!("{v:?} is not a Kubernetes version"),
        "a version like 1.31",
    )
}

/// Refuses a version older than the source cluster's (a restore may need its APIs).
pub fn check_version(wanted: &str, source: &str) -> Result<(), SpecError> {
    match (parse_version(wanted), parse_version(source)) {
        (Some(w), Some((maj, min))) if w < (maj, min) => Err(SpecError::new(
            Field::Version,
            format!(
                "Kubernetes {wanted} is older than the source cluster's {maj}.{min} (a restore may need APIs it lacks)"
            ),
            format!("{maj}.{min} or newer"),
        )),
        (None, _) => Err(bad_version(wanted)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert_eq!(parse_version("v1.31.2-eks-abc"), Some((1, 31)));
        assert_eq!(parse_version("1.29"), Some((1, 29)));
        assert!(check_version("1.31", "v1.31.4").is_ok());
        assert!(check_version("1.32", "1.31").is_ok());
        let e = check_version("1.30", "v1.31.4-eks").unwrap_err();
        assert_eq!(e.field, Field::Version);
        assert_eq!(e.want, "1.31 or newer");
        assert!(
            e.problem.contains("older than the source cluster's 1.31"),
            "{e}"
        );
        let e = check_version("latest", "1.31").unwrap_err();
        assert_eq!(e.field, Field::Version);
        assert_eq!(
            e.to_string(),
            "\"latest\" is not a Kubernetes version; the Kubernetes version should be a version like 1.31"
        );
    }
}

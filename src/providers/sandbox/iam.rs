//! EKS-style authentication for a sandbox cluster made by the sandbox cloud: a bearer
//! token `k8s-aws-v1.<base64url of a presigned STS GetCallerIdentity URL>` is accepted
//! when the URL is an STS `GetCallerIdentity` call, its SigV4 signature checks out
//! against the secret of a known access key with `x-k8s-aws-id` = this cluster's name
//! among the signed headers, and it was signed less than 15 minutes ago. The IAM ARN of
//! the key's user becomes the Kubernetes user name, as EKS access entries map it; the
//! cluster's creator is in `system:masters` (EKS's bootstrap cluster-admin access),
//! everyone else only `system:authenticated` (RBAC decides the rest).
//!
//! Owns token verification and the ARN-to-user mapping; the server asks it about
//! tokens with the `k8s-aws-v1.` prefix only.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::server::User;
use super::sigv4;

/// The prefix of an EKS bearer token.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// How long after signing EKS accepts a token.
pub const TOKEN_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// An IAM user of the sandbox cloud: its access key, secret, and whether it may use EKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The IAM user name (`arn:aws:iam::<account>:user/<user>`).
    pub user: String,
    /// Whether its policy allows the EKS API (`eks:*`).
    pub eks: bool,
}

impl Principal {
    pub fn arn(&self, account: &str) -> String {
        format!("arn:aws:iam::{account}:user/{}", self.user)
    }

    /// The `UserId` STS reports (AWS uses the key's unique ID for IAM users).
    pub fn user_id(&self) -> String {
        format!("AIDA{}", self.access_key_id.trim_start_matches("AKIA"))
    }
}

/// What a sandbox cluster of the cloud authenticates EKS tokens with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsIam {
    /// The EKS cluster's name: the value `x-k8s-aws-id` must have.
    pub cluster: String,
    pub account: String,
    pub principals: Vec<Principal>,
    /// ARNs with cluster-admin access (`system:masters`): the cluster's creator.
    pub admins: Vec<String>,
}

impl AwsIam {
    fn secret_of(&self, key: &str) -> Option<String> {
        self.principals
            .iter()
            .find(|p| p.access_key_id == key)
            .map(|p| p.secret_access_key.clone())
    }

    /// The user an EKS token stands for, or why it is refused.
    pub fn authenticate(&self, token: &str, now: SystemTime) -> Result<User, String> {
        let b64 = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or("not an EKS token (no k8s-aws-v1. prefix)")?;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64.trim_end_matches('='))
            .map_err(|e| format!("the token is not base64url: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))?;
        let rest = url
            .strip_prefix("https://")
            .ok_or("the token's URL is not https")?;
        let (host, path_query) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let sts_host = host == "sts.amazonaws.com"
            || (host.starts_with("sts.") && host.ends_with(".amazonaws.com"));
        if !sts_host {
            return Err(format!("the token names {host}, not an STS endpoint"));
        }
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let params = sigv4::query_params(query);
        let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        if path != "/"
            || get("Action") != Some("GetCallerIdentity")
            || get("Version") != Some("2011-06-15")
        {
            return Err("the token is not an STS GetCallerIdentity request".into());
        }
        let signed = get("X-Amz-SignedHeaders").unwrap_or_default();
        if !signed.split(';').any(|h| h == "x-k8s-aws-id") {
            return Err("the token does not sign the x-k8s-aws-id header".into());
        }
        let headers = vec![("x-k8s-aws-id".to_string(), self.cluster.clone())];
        let ok = sigv4::verify_presigned(
            &url,
            &headers,
            &|k| self.secret_of(k),
            now,
            TOKEN_MAX_AGE,
        )
        .map_err(|e| match e {
            sigv4::SigError::Mismatch => format!(
                "the token's signature does not match (a token for another cluster than {}, or a wrong secret key)",
                self.cluster
            ),
            other => other.to_string(),
        })?;
        if ok.service != "sts" {
            return Err(format!("the token is signed for {}, not sts", ok.service));
        }
        let principal = self
            .principals
            .iter()
            .find(|p| p.access_key_id == ok.access_key)
            .ok_or("unknown access key")?;
        let arn = principal.arn(&self.account);
        let mut groups = Vec::new();
        if self.admins.contains(&arn) {
            groups.push("system:masters".to_string());
        }
        groups.push("system:authenticated".to_string());
        Ok(User { name: arn, groups })
    }
}

//! Who the user is on a cluster: the user name and groups its `SelfSubjectReview`
//! (authentication.k8s.io/v1) returns. Ferry keeps no user database of its own.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Api;
use kube::api::PostParams;

use super::eval::Identity;
use super::{PolicyError, Result};

/// Asks `client`'s cluster who the client is.
pub async fn who_am_i(client: &kube::Client, cluster: &str) -> Result<Identity> {
    let fail = |detail: String| PolicyError::Identity {
        cluster: cluster.to_string(),
        detail,
    };
    let review = SelfSubjectReview::default();
    let answer = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let info = answer
        .status
        .and_then(|s| s.user_info)
        .ok_or_else(|| fail("the review came back without user information".into()))?;
    let username = info
        .username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| fail("the review came back without a user name".into()))?;
    let mut groups = info.groups.unwrap_or_default();
    groups.sort();
    groups.dedup();
    tracing::debug!(%cluster, %username, ?groups, "identity from SelfSubjectReview");
    Ok(Identity {
        cluster: cluster.to_string(),
        username,
        groups,
    })
}

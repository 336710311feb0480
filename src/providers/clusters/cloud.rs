//! The clusters of linked cloud accounts: every AWS account's regions (EKS) and every
//! Azure subscription (AKS), listed concurrently as linked clusters, one result per
//! [`Origin`] as each answers. `ferry clusters` waits for all of them; the console
//! shows its kubeconfig contexts at once and adds each origin's clusters when they come.

use futures::future::BoxFuture;
use futures::{FutureExt as _, Stream, StreamExt as _};

use crate::aks::{self, AzureSubscription};
use crate::eks::{self, AwsAccount};
use crate::kubeconfig::{LinkedCluster, Origin};

/// How many accounts' regions and subscriptions are asked at once.
const CONCURRENCY: usize = 8;

/// One origin's answer: its clusters, or why they could not be listed (with what to do).
pub type Listed = (Origin, Result<Vec<LinkedCluster>, String>);

fn aws_origin(account: &AwsAccount, region: &str) -> Origin {
    Origin::Cloud {
        provider: "aws".into(),
        account: account.label(),
        region: region.into(),
    }
}

fn azure_origin(sub: &AzureSubscription) -> Origin {
    Origin::Cloud {
        provider: "azure".into(),
        account: sub.label(),
        region: String::new(),
    }
}

/// Every origin [`list`] answers for, in the order the settings name them.
pub fn origins(aws: &[AwsAccount], azure: &[AzureSubscription]) -> Vec<Origin> {
    aws.iter()
        .flat_map(|a| a.regions.iter().map(move |r| aws_origin(a, r)))
        .chain(azure.iter().map(azure_origin))
        .collect()
}

/// Lists every origin's clusters, at most `CONCURRENCY` at a time, each bounded by its
/// provider's timeout; yields each origin's answer as it comes.
pub fn list(aws: &[AwsAccount], azure: &[AzureSubscription]) -> impl Stream<Item = Listed> + use<> {
    let mut jobs: Vec<BoxFuture<'static, Listed>> = Vec::new();
    for a in aws {
        for r in &a.regions {
            let (a, r) = (a.clone(), r.clone());
            jobs.push(
                async move {
                    let res = eks::list_region(&a, &r)
                        .await
                        .map(|cs| cs.iter().map(|c| LinkedCluster::from_eks(&a, c)).collect())
                        .map_err(|e| e.to_string());
                    (aws_origin(&a, &r), res)
                }
                .boxed(),
            );
        }
    }
    for s in azure {
        let s = s.clone();
        jobs.push(
            async move {
                let res = aks::list_subscription(&s)
                    .await
                    .map(|cs| cs.iter().map(|c| LinkedCluster::from_aks(&s, c)).collect())
                    .map_err(|e| e.to_string());
                (azure_origin(&s), res)
            }
            .boxed(),
        );
    }
    futures::stream::iter(jobs).buffer_unordered(CONCURRENCY)
}

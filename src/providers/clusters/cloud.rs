//! Cloud accounts behind one trait. A [`Cloud`] is one cloud with the accounts the
//! settings link to it: AWS accounts and their regions (EKS, [`crate::eks::Aws`]), Azure
//! subscriptions (AKS, [`crate::aks::Azure`]). [`Clouds`] holds them all; callers list
//! every origin's clusters (concurrently, one result per [`Origin`] as each answers) and
//! find a cluster by its name (`eks:…`, `aks:…`) through it without naming a cloud.
//! `ferry clusters` waits for all of them; the console shows its kubeconfig contexts at
//! once and adds each origin's clusters when they come.
//!
//! A cluster to create is a [`ClusterRequest`]: each cloud's own spec and where it goes
//! (`eks::EksRequest`, `aks::AksRequest`), created with [`CreateEvent`]s as it goes.
//! Each cloud's forms (flags, the console's form) build their own spec; everything after
//! that is the same for every cloud.
//!
//! Another cloud is a module of this crate implementing both traits (with its variants
//! of [`CloudError`] and `kubeconfig::CloudCluster`), its key in `config.rs`'s settings,
//! and its forms.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};

use crate::aks::AksError;
use crate::eks::EksError;
use crate::kubeconfig::{LinkedCluster, Origin};
use crate::probe::StorageClassInfo;

/// How many accounts' regions and subscriptions are asked at once.
const CONCURRENCY: usize = 8;

/// One origin's answer: its clusters, or why they could not be listed (with what to do).
pub type Listed = (Origin, Result<Vec<LinkedCluster>, String>);

/// What went wrong in a cloud, in that cloud's words.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error(transparent)]
    Eks(#[from] EksError),
    #[error(transparent)]
    Aks(#[from] AksError),
}

impl CloudError {
    /// The message, with the advice of a creation that failed half-way worded for the
    /// caller's front end (`again`: how its user starts the same creation again; see
    /// `EksError::explain`).
    pub fn explain(&self, again: &str) -> String {
        match self {
            CloudError::Eks(e) => e.explain(again),
            CloudError::Aks(e) => e.explain(again),
        }
    }
}

/// A cluster found by name: resolves to the linked cluster, or why it cannot be found.
pub type Found = BoxFuture<'static, Result<LinkedCluster, CloudError>>;

/// One cloud with its linked accounts: what every caller does with a cloud, whichever
/// it is.
pub trait Cloud: fmt::Debug + Send + Sync + 'static {
    /// The cloud's name in origins (`aws`, `azure`), as `ferry clusters` shows it.
    fn provider(&self) -> &'static str;
    /// The kind of its managed clusters in messages (`EKS`, `AKS`).
    fn kind(&self) -> &'static str;
    /// The prefix of its cluster names (`eks`, `aks`), also the key of a cluster's
    /// facts in `ferry clusters --json` (`LinkedCluster::cloud_facts`).
    fn prefix(&self) -> &'static str;
    /// Whether the settings link an account of this cloud.
    fn is_linked(&self) -> bool;
    /// Every origin [`Cloud::list`] answers for, in the order the settings name them
    /// (an AWS account's regions, an Azure subscription).
    fn origins(&self) -> Vec<Origin>;
    /// One listing per origin, each giving up after the cloud's timeout with a message
    /// saying what to check.
    fn list(&self) -> Vec<BoxFuture<'static, Listed>>;
    /// The cluster `name` names when it is one of this cloud's cluster names
    /// (`eks:<profile>/<region>/<cluster>`), in the linked account of that name or, when
    /// none is linked by it, an account made from the name; `None` for other names, an
    /// error for a name of this cloud that is malformed. The future asks the cloud.
    fn find(&self, name: &str) -> Option<Result<Found, CloudError>>;
    /// The cloud as its own type, for its forms (see [`Clouds::get`]).
    fn as_any(&self) -> &dyn Any;
}

/// Every cloud Ferry reaches, with the accounts the settings link (built by
/// `config.rs` from `aws:` and `azure:`).
#[derive(Debug, Clone, Default)]
pub struct Clouds {
    clouds: Vec<Arc<dyn Cloud>>,
}

impl Clouds {
    /// The given clouds, in the order origins are listed.
    pub fn new(clouds: Vec<Arc<dyn Cloud>>) -> Clouds {
        Clouds { clouds }
    }

    /// These clouds with `cloud` in place of the one of the same provider (added last
    /// when there is none).
    pub fn with(mut self, cloud: impl Cloud) -> Clouds {
        match self
            .clouds
            .iter()
            .position(|c| c.provider() == cloud.provider())
        {
            Some(i) => self.clouds[i] = Arc::new(cloud),
            None => self.clouds.push(Arc::new(cloud)),
        }
        self
    }

    /// The clouds.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Cloud> {
        self.clouds.iter().map(|c| c.as_ref())
    }

    /// The cloud of type `T` (its forms need its accounts); `None` when absent.
    pub fn get<T: Cloud>(&self) -> Option<&T> {
        self.iter().find_map(|c| c.as_any().downcast_ref::<T>())
    }

    /// Whether any cloud has a linked account.
    pub fn is_linked(&self) -> bool {
        self.iter().any(|c| c.is_linked())
    }

    /// Every origin [`Clouds::list`] answers for, in the order the settings name them.
    pub fn origins(&self) -> Vec<Origin> {
        self.iter().flat_map(|c| c.origins()).collect()
    }

    /// Lists every origin's clusters, at most `CONCURRENCY` at a time, each bounded by
    /// its cloud's timeout; yields each origin's answer as it comes.
    pub fn list(&self) -> impl Stream<Item = Listed> + use<> {
        let jobs: Vec<BoxFuture<'static, Listed>> = self.iter().flat_map(|c| c.list()).collect();
        futures::stream::iter(jobs).buffer_unordered(CONCURRENCY)
    }

    /// The cloud whose cluster name `name` is and the cluster it names (see
    /// [`Cloud::find`]); `None` when no cloud knows the name.
    pub fn find(&self, name: &str) -> Option<(&dyn Cloud, Result<Found, CloudError>)> {
        self.iter().find_map(|c| c.find(name).map(|f| (c, f)))
    }
}

/// What creation reports as it goes, whichever the cloud.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateEvent {
    /// A step started (`creating cluster shop-eks`).
    Step(String),
    /// Something being waited for has this status.
    Status { what: String, status: String },
    /// Something is ready.
    Ready(String),
}

/// A cluster a creation made.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new cluster, linked.
    pub cluster: LinkedCluster,
    /// What the cloud says of it (`EKS cluster shop is ACTIVE (Kubernetes 1.31)`).
    pub ready: String,
}

/// A cluster to create: a cloud's own spec, the account and place it goes to, and the
/// source's version (the floor for the new one's). Made by that cloud's forms.
pub trait ClusterRequest: fmt::Debug + Send + Sync {
    /// The kind of cluster in messages (`EKS`, `AKS`).
    fn kind(&self) -> &'static str;
    /// The new cluster's name.
    fn name(&self) -> &str;
    /// The storage classes it will have (what a class mapping may choose).
    fn storage_classes(&self) -> Vec<StorageClassInfo>;
    /// Creates it, checking the request (its version against the source's included)
    /// before anything is made; progress goes to `events`. Parts that exist already (a
    /// rerun after a failure) are reused.
    fn create<'a>(
        &'a self,
        events: &'a (dyn Fn(CreateEvent) + Send + Sync),
    ) -> BoxFuture<'a, Result<Created, CloudError>>;
    /// What stays when a job fails after the cluster was created, and how to remove it;
    /// `again` is how the front end's user reuses it.
    fn leftover(&self, again: &str) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aks::{Azure, AzureSubscription};
    use crate::eks::{Aws, AwsAccount};

    fn clouds() -> Clouds {
        Clouds::default()
            .with(Aws::new(vec![AwsAccount {
                profile: Some("work".into()),
                regions: vec!["eu-west-1".into(), "us-east-1".into()],
                ..AwsAccount::default()
            }]))
            .with(Azure::new(vec![AzureSubscription {
                id: "s-1".into(),
                name: Some("prod".into()),
                ..AzureSubscription::default()
            }]))
    }

    #[test]
    fn origins_follow_the_settings_and_each_cloud_answers_for_its_names() {
        let c = clouds();
        assert!(c.is_linked());
        assert!(!Clouds::default().is_linked());
        let labels: Vec<String> = c.origins().iter().map(Origin::label).collect();
        assert_eq!(
            labels,
            ["aws work eu-west-1", "aws work us-east-1", "azure prod"]
        );
        assert_eq!(c.get::<Aws>().map(|a| a.accounts.len()), Some(1));
        // `with` replaces the cloud of the same provider.
        let c = c.with(Aws::default());
        assert_eq!(c.iter().count(), 2);
        assert!(c.get::<Aws>().is_some_and(|a| a.accounts.is_empty()));

        let c = clouds();
        let (cloud, found) = c.find("eks:work/eu-west-1/shop").unwrap();
        assert_eq!(cloud.kind(), "EKS");
        assert!(found.is_ok());
        let (cloud, found) = c.find("aks:prod/rg/shop").unwrap();
        assert_eq!(cloud.provider(), "azure");
        assert!(found.is_ok());
        let Some((_, Err(e))) = c.find("aks:prod/shop") else {
            panic!("a malformed AKS name is an error");
        };
        assert!(e.to_string().contains("is not an AKS cluster name"), "{e}");
        assert!(c.find("prod").is_none());
    }

    #[test]
    fn accounts_not_linked_are_made_from_the_name() {
        let c = clouds();
        let aws = c.get::<Aws>().unwrap();
        assert_eq!(aws.account("work", "ap-south-1").regions.len(), 2);
        let other = aws.account("default", "ap-south-1");
        assert_eq!(
            (other.profile, other.regions),
            (None, vec!["ap-south-1".to_string()])
        );
        let azure = c.get::<Azure>().unwrap();
        assert_eq!(azure.subscription("prod").id, "s-1");
        assert_eq!(azure.subscription("s-1").label(), "prod");
        assert_eq!(azure.subscription("s-2").label(), "s-2");
    }
}

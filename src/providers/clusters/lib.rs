//! Providers of Kubernetes clusters: kubeconfig contexts, cloud accounts (EKS, AKS) and
//! the local sandbox (whose kubeconfig is just another file).
//! Everything Ferry does with a cluster goes through the same
//! kube-rs client whichever provider found it; no other module special-cases one.
//!
//! - [`aks`]: Azure subscriptions, their AKS clusters, envelopes and ARM tokens.
//! - [`client`]: the kube client made from a kubeconfig (timeouts, errors naming the
//!   server and context).
//! - [`cloud`]: every linked cloud account's clusters, listed concurrently by origin.
//! - [`eks`]: AWS accounts, their EKS clusters, envelopes and tokens.
//! - [`exec_plugin`]: kubeconfig credential plugins, run by Ferry with a timeout and an
//!   output limit, their tokens renewed before they expire.
//! - [`kubeconfig`]: the linked clusters of the user's kubeconfig files, and each
//!   cluster's identity (server and CA, EKS ARN, AKS resource ID).
//! - [`probe`]: reachability, version and facts of a cluster, concurrently.
//! - [`spec`]: what is wrong with a request to create a cluster, by field, for each
//!   front end to word (flags, form rows).

pub mod aks;
pub mod client;
pub mod cloud;
pub mod eks;
pub mod exec_plugin;
pub mod kubeconfig;
pub mod probe;
pub mod spec;

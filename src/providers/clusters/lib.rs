//! Providers of Kubernetes clusters: kubeconfig contexts, cloud accounts (EKS, AKS) and
//! the local sandbox (whose kubeconfig is just another file).
//! Everything Ferry does with a cluster goes through the same
//! kube-rs client whichever provider found it; no other module special-cases one.
//! Callers reach the clouds through [`cloud::Cloud`] and [`cloud::ClusterRequest`] and
//! name a cloud only in its settings and its forms.
//!
//! - [`aks`]: Azure subscriptions ([`aks::Azure`]), their AKS clusters, envelopes, ARM
//!   tokens and creation.
//! - [`client`]: the kube client made from a kubeconfig (timeouts, errors naming the
//!   server and context).
//! - [`cloud`]: the trait each cloud implements and [`cloud::Clouds`], every linked
//!   account's clusters listed concurrently by origin and found by name; a cluster to
//!   create and its progress events.
//! - [`eks`]: AWS accounts ([`eks::Aws`]), their EKS clusters, envelopes, tokens and
//!   creation.
//! - [`exec_plugin`]: kubeconfig credential plugins, run by Ferry with a timeout and an
//!   output limit, their tokens renewed before they expire.
//! - [`kubeconfig`]: the linked clusters of the user's kubeconfig files, and each
//!   cluster's identity (server and CA, EKS ARN, AKS resource ID).
//! - [`probe`]: reachability, version and facts of a cluster, concurrently.
//! - [`spec`]: what is wrong with a request to create a cluster, by field, for each
//!   front end to word (flags, form rows); the version checks all clouds share.

pub mod aks;
pub mod client;
pub mod cloud;
pub mod eks;
pub mod exec_plugin;
pub mod kubeconfig;
pub mod probe;
pub mod spec;

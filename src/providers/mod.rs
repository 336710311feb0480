//! Providers of Kubernetes clusters: kubeconfig contexts, cloud accounts (EKS, AKS) and
//! the local sandbox. Everything Ferry does with a cluster goes through the same
//! kube-rs client whichever provider found it; no other module special-cases one.
//!
//! - [`sandbox`]: local clusters that serve the Kubernetes API over HTTPS, for trying
//!   Ferry and for its tests.

pub mod sandbox;

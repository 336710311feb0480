//! The sandbox against real clients (kube-rs, kubectl), kubeconfig plugins, and the emulated clouds.
//!
//! One test binary for these modules (each was a binary of its own), so the suite
//! links a few binaries instead of one per file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferry_testing::repo as common;
#[path = "../support/mod.rs"]
mod support;

mod aks;
mod cloud;
mod eks;
mod kubeconfig_plugins;
mod sandbox;
mod sandbox_api;
mod sandbox_exec;
mod sandbox_isolation;
mod sandbox_kubectl;
mod sandbox_workloads;
mod scaffold;

//! Moving workloads between clusters: migrations, the job layer, pauses, volume data, policies, and the kill campaign.
//!
//! One test binary for these modules (each was a binary of its own), so the suite
//! links a few binaries instead of one per file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferry_testing::repo as common;
#[path = "../support/mod.rs"]
mod support;

mod agents;
mod fidelity;
mod helm_release;
mod jobs;
mod kill_campaign;
mod migrate;
mod modifiers;
mod pause;
mod policy;
mod policy_identity;
mod reliability;
mod scope;
mod volume_integrity;

//! Ferry: back up, clone and migrate Kubernetes workloads between clusters.
//!
//! This package is the `ferry` binary: its subcommands ([`cli`]) and where it keeps its
//! files ([`config`]). The work is done by the workspace's crates, which it only wires
//! together (see ARCHITECTURE.md):
//!
//! - `ferry-repo` (`src/engine/repo`): the deduplicating, encrypted repository.
//! - `ferry-k8s` (`src/engine/k8s`): capture, volume mover, transform, plan, apply.
//! - `ferry-providers` (`src/providers/clusters`): where clusters come from.
//! - `ferry-sandbox` (`src/providers/sandbox`): local clusters for trying Ferry.
//! - `ferry-policy` (`src/policy`): who may move what where.
//! - `ferry-jobs` (`src/jobs`): the jobs both front ends run, through a permit.
//! - `ferry-console` (`src/ui`): the full-screen console and progress display.

pub mod cli;
pub mod config;

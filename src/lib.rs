//! Ferry: back up, clone and migrate Kubernetes workloads between clusters.
//!
//! - [`engine`]: the deduplicating, encrypted repository and the jobs that use it. It
//!   knows nothing of terminals.
//! - [`providers`]: where clusters come from.
//! - [`ui`]: what the user sees: progress rendering now, the full-screen console later.
//! - [`policy`]: who may move what where: signed policies, scrubbing, the audit trail.
//! - [`cli`]: the subcommands, the edge where errors get their context.
//! - [`config`]: where Ferry keeps its files.

pub mod cli;
pub mod config;
pub mod engine;
pub mod policy;
pub mod providers;
pub mod ui;

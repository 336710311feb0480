//! The repository engine through its public API: local folders, S3 (moto and s3s-fs), faults.
//!
//! One test binary for these modules (each was a binary of its own), so the suite
//! links a few binaries instead of one per file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferry_testing::repo as common;
#[path = "../support/mod.rs"]
mod support;

mod backend_faults;
mod engine;
mod s3_backend;
mod s3_faults;
mod s3_repo;
mod s3s_fs;

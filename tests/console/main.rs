//! The console and the command line, driven as a user would.
//!
//! One test binary for these modules (each was a binary of its own), so the suite
//! links a few binaries instead of one per file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferry_testing::repo as common;
#[path = "../support/mod.rs"]
mod support;

mod cli;
mod console_app;
mod console_screens;
mod console_tmux;
mod layering;

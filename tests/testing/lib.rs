//! Test support for Ferry's engines: backends that let a test see and break what the
//! repository engine does with its storage, without a disk or a server.
//!
//! - [`memory::MemoryBackend`]: a repository's files in memory, shareable between
//!   `Repository` handles (a "second process" opening the same store).
//! - [`faults::FaultyBackend`]: wraps any backend and, at chosen calls, fails them
//!   (transient or not), delays them, or truncates what a read returns; it counts every
//!   call so a test can aim at "the third pack write" and check its fault happened.
//! - [`repo`]: repositories in temp folders, file trees, strict tree comparison.
//!
//! The integration tests' cluster fixtures (sandboxes, moto, kubectl, tmux) are in
//! `tests/support`: they need the `ferry` binary cargo builds for the tests.

pub mod faults;
pub mod memory;
pub mod repo;

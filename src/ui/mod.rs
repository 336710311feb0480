//! What the user sees. For now: progress of engine jobs drawn on the terminal by the
//! command-line interface, from snapshots of the job's shared progress at a steady
//! rate. The full-screen console will draw the same snapshots.

pub mod format;
pub mod progress;

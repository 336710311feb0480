//! What the user sees: the progress line of the subcommands (`progress.rs`), numbers in
//! words (`format.rs`), and the full-screen console:
//! - `app.rs`: state and how background results fold into it (no terminal, no
//!   waiting); `input.rs`: keys and the mouse; `actions.rs`: what commands do (marks,
//!   sorting, YAML and describe, backups, answered questions); `job.rs`: a job's clock
//!   and end; `live.rs`: lists that read themselves again; `line.rs`: the `:` line;
//!   `yaml.rs`, `describe.rs`, `sort.rs`: the viewer, descriptions, sorting;
//! - `query.rs`: what tests and scripts may read of a running console;
//! - `tasks.rs`: background work (probes, listings, plans, jobs) that reports by message;
//! - `event.rs`: the terminal loop (raw mode, input thread, steady redraws, restore);
//! - `page.rs`: the screen trait: each screen's rows, loading, and the commands it
//!   offers and carries out (help and hints are drawn from them);
//! - `screens/`: each screen's page and drawing; `widgets.rs`: shared pieces;
//! - `wizard_flow.rs`, `prompt.rs`: what the wizard and the restore prompt do with the
//!   app (open, check, plan, confirm, start the job);
//! - `wizard_state.rs`: the restore / migrate / clone wizard's steps and checks;
//! - `theme.rs`, `keymap.rs`: colours and keys from TOML files, and `error.rs`: why
//!   such a file cannot be used.
//!
//! The engine knows nothing of this module.

mod actions;
pub mod app;
pub mod describe;
pub mod error;
pub mod event;
pub mod follow;
pub mod format;
mod input;
pub mod job;
pub mod keymap;
mod line;
mod live;
pub mod newcluster;
pub mod page;
pub mod progress;
mod prompt;
pub mod query;
mod rows;
pub mod screens;
pub mod sort;
pub mod tasks;
pub mod theme;
pub mod whole;
pub mod widgets;
mod wizard_flow;
pub mod wizard_state;
pub mod yaml;

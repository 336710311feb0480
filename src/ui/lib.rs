//! What the user sees: the progress line of the subcommands (`progress.rs`), numbers in
//! words (`format.rs`), and the full-screen console:
//! - `app.rs`: state and what each action does (no terminal, no waiting);
//! - `tasks.rs`: background work (probes, listings, plans, jobs) that reports by message;
//! - `event.rs`: the terminal loop (raw mode, input thread, steady redraws, restore);
//! - `screens/`: drawing each screen from the state; `widgets.rs`: shared pieces;
//! - `wizard_state.rs`: the restore / migrate / clone wizard's steps and checks;
//! - `theme.rs`, `keymap.rs`: colours and keys from TOML files.
//!
//! The engine knows nothing of this module.

pub mod app;
pub mod event;
pub mod format;
pub mod keymap;
pub mod newcluster;
pub mod progress;
pub mod screens;
pub mod tasks;
pub mod theme;
pub mod widgets;
pub mod wizard_state;

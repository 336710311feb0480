//! `ferry` (no subcommand) and `ferry console`: the full-screen console.

use std::io::IsTerminal as _;

use anyhow::Context as _;

use super::{Context, Exit};
use crate::config::Settings;
use ferry_console::app::{App, Env};
use ferry_console::error::TaskError;
use ferry_console::keymap::Keymap;
use ferry_console::theme::{ColorDepth, Theme};

pub fn run(ctx: &Context, read_only: bool) -> anyhow::Result<Exit> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "the console needs a terminal: run `ferry` in one, or use the subcommands (`ferry --help`)"
        );
    }
    let settings = Settings::load(&ctx.dirs)?;
    let depth = ColorDepth::detect();
    let theme = Theme::load(settings.theme.as_deref(), &ctx.dirs.config, depth)
        .and_then(|t| t.with_accents(&settings.accent, depth))?;
    let keymap = Keymap::load(&ctx.dirs.config)?;
    // Kubeconfig contexts now; cloud accounts' clusters join on the screen as they answer.
    let linked = super::kube::kubeconfig_linked(ctx, &settings)?;
    // Opened before the screen switches: a password prompt still works here.
    let repo = ctx.open().map_err(|e| TaskError::NoRepository {
        reason: format!("{e:#}"),
    });
    let mover = super::moving::mover_options(ctx, &settings, None)?;
    let env = Env {
        linked,
        repo,
        rt: ctx.rt.handle().clone(),
        theme,
        keymap,
        read_only: read_only || settings.read_only,
        read_only_contexts: settings.read_only_contexts.clone(),
        mover,
        reports: ferry_k8s::apply::Report::dir(&ctx.dirs.state),
        downloads: ctx.dirs.data.join("downloads"),
        clouds: settings.clouds(),
    };
    let _enter = ctx.rt.enter();
    ferry_console::event::run(App::new(env)).context("the console stopped")?;
    Ok(Exit::SUCCESS)
}

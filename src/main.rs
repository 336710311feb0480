//! The `ferry` binary: logging to a file, then the command line.

use std::process::ExitCode;

use clap::Parser;
use ferry::cli::{self, Cli};
use ferry::config::Dirs;

fn init_logging(dirs: &Dirs) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(&dirs.state).ok()?;
    let file = tracing_appender::rolling::never(&dirs.state, "ferry.log");
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dirs = Dirs::discover();
    let _guard = init_logging(&dirs);
    // The newest policy version seen per repository, so a rolled-back one is refused.
    ferry_policy::store::remember_in(dirs.state.join("policy-seen"));
    tracing::info!(args = ?std::env::args().collect::<Vec<_>>(), "start");
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

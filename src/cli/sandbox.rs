//! `ferry sandbox up|down|status|reset|seed|user`: local Kubernetes clusters for trying
//! Ferry (`seed` lives in `sandbox_seed.rs`, `user` in `sandbox_user.rs`).
//!
//! Each sandbox lives in `<data>/sandbox/<name>/`; `up` starts each one as a background
//! `ferry sandbox serve` process (or in this process with `--foreground`), records its pid
//! and address in `server.json`, and writes `<data>/sandbox/kubeconfig` with one context
//! per running sandbox.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::{Context, Exit};
use ferry_sandbox::{self as sandbox, KubeconfigEntry, Sandbox, SandboxConfig};

/// The clusters `up` starts when none is named: a production and a QA cluster with
/// different storage classes, so a first migration has something to map.
const DEFAULT_NAMES: [&str; 2] = ["prod", "qa"];
const SERVER_FILE: &str = "server.json";

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start sandbox clusters and write a kubeconfig for them
    Up(UpArgs),
    /// Stop sandbox clusters (all running ones unless --name is given)
    Down(NamesArgs),
    /// List the sandboxes and whether they run
    Status,
    /// Delete a sandbox's objects; it keeps its CA and tokens and restarts if it ran
    Reset(NamesArgs),
    /// Load a sample shop application (PostgreSQL, Redis, web, ...) into a running sandbox
    Seed(SeedArgs),
    /// Add or list the users of a sandbox (tokens and kubeconfig contexts)
    #[command(subcommand)]
    User(super::sandbox_user::UserCommand),
    /// The sandbox cloud: EKS and STS APIs whose clusters are sandboxes
    #[command(subcommand)]
    Cloud(super::sandbox_cloud::CloudCommand),
    /// Serve one sandbox in this process (what `up` starts in the background)
    #[command(hide = true)]
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Sandbox name; repeat for several clusters (e.g. --name prod --name qa) [default: prod and qa]
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Serve in this process until Ctrl-C instead of in the background
    #[arg(long)]
    pub foreground: bool,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Sandbox name; repeat for several
    #[arg(long = "name")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The running sandbox to seed
    #[arg(long, default_value = "prod")]
    pub cluster: String,
    /// The application's namespace
    #[arg(long, default_value = "shop")]
    pub namespace: String,
    /// How many PostgreSQL data files to write into its volume
    #[arg(long, default_value_t = 64)]
    pub files: usize,
    /// The size of each data file in bytes (64 files of 1 MiB: 64 MiB)
    #[arg(long, default_value_t = 1 << 20)]
    pub file_size: u64,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub name: String,
}

/// What `server.json` records about a running sandbox.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ServerInfo {
    pub pid: u32,
    pub url: String,
}

pub(super) fn root(ctx: &Context) -> PathBuf {
    ctx.dirs.data.join("sandbox")
}

pub(super) fn kubeconfig_path(ctx: &Context) -> PathBuf {
    root(ctx).join("kubeconfig")
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "{name:?} is not a valid sandbox name: use lowercase letters, digits and '-' (at most 40)"
        );
    }
    Ok(())
}

fn names_or_default(names: &[String]) -> anyhow::Result<Vec<String>> {
    let names = if names.is_empty() {
        DEFAULT_NAMES.iter().map(|n| n.to_string()).collect()
    } else {
        names.to_vec()
    };
    for n in &names {
        check_name(n)?;
    }
    Ok(names)
}

fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_err() {
        return false;
    }
    // A recycled pid belongs to some other program: check it is a Ferry sandbox.
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => String::from_utf8_lossy(&cmd).contains("sandbox"),
        Err(_) => true,
    }
}

/// The running server of the sandbox in `dir`, if any.
pub(super) fn running(dir: &Path) -> Option<ServerInfo> {
    let bytes = std::fs::read(dir.join(SERVER_FILE)).ok()?;
    let info: ServerInfo = serde_json::from_slice(&bytes).ok()?;
    pid_alive(info.pid).then_some(info)
}

/// Every sandbox folder under the root, by name.
pub(super) fn all_sandboxes(ctx: &Context) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root(ctx))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Rewrites the kubeconfig with one context per running sandbox, and one per user added
/// to it (`ferry-<cluster>-<user>`); returns its path.
pub(super) fn write_kubeconfig(ctx: &Context) -> anyhow::Result<Option<PathBuf>> {
    let mut entries = Vec::new();
    let mut users = Vec::new();
    for name in all_sandboxes(ctx) {
        let dir = root(ctx).join(&name);
        if let Some(info) = running(&dir) {
            entries.push(sandbox::saved_entry(&name, &dir, &info.url)?);
            for (user, token) in sandbox::users(&dir)? {
                // The built-in users keep the kubeconfig as it was: one context each.
                if user.name != "admin" && user.name != "viewer" {
                    users.push(sandbox::KubeconfigUser {
                        cluster: name.clone(),
                        user: user.name,
                        token,
                    });
                }
            }
        }
    }
    let path = kubeconfig_path(ctx);
    if entries.is_empty() {
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    sandbox::write_kubeconfig_with_users(&path, &entries, &users)?;
    Ok(Some(path))
}

fn print_usage(path: &Path, entries: &[KubeconfigEntry]) {
    say!("Kubeconfig: {}", path.display());
    say!("Use it with:");
    say!("  export KUBECONFIG={}", path.display());
    for e in entries {
        say!("  kubectl --context {} get namespaces", e.context_name());
    }
}

fn write_server_file(dir: &Path, url: &str) -> anyhow::Result<()> {
    let info = ServerInfo {
        pid: std::process::id(),
        url: url.to_string(),
    };
    sandbox::write_atomic(&dir.join(SERVER_FILE), &serde_json::to_vec(&info)?)?;
    Ok(())
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}

pub fn run(ctx: &Context, cmd: SandboxCommand) -> anyhow::Result<Exit> {
    match cmd {
        SandboxCommand::Up(a) => up(ctx, a),
        SandboxCommand::Down(a) => down(ctx, &a.names).map(|_| Exit::SUCCESS),
        SandboxCommand::Status => status(ctx),
        SandboxCommand::Reset(a) => reset(ctx, a),
        SandboxCommand::Seed(a) => super::sandbox_seed::run(ctx, &root(ctx), a),
        SandboxCommand::User(c) => super::sandbox_user::run(ctx, c),
        SandboxCommand::Serve(a) => serve(ctx, a),
        SandboxCommand::Cloud(c) => super::sandbox_cloud::run(ctx, c),
    }
}

/// A sandbox as `ferry sandbox up` runs it: demo storage, and Ferry's agent image run
/// as the `ferry-agent` built beside this binary (`FERRY_AGENT_BIN` overrides), as a
/// real cluster pulls the agent image.
fn sandbox_config(name: &str, dir: &std::path::Path) -> SandboxConfig {
    let config = SandboxConfig::new(name, dir).with_demo_storage();
    let agent = std::env::var_os("FERRY_AGENT_BIN")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("ferry-agent")))
        })
        .filter(|p| p.is_file());
    match agent {
        Some(binary) => config.with_image("ferry-agent", binary),
        None => {
            tracing::warn!(
                "no ferry-agent binary beside ferry: the sandbox cannot run agent pods (build it: cargo build -p ferry-agent)"
            );
            config
        }
    }
}

fn serve(ctx: &Context, a: ServeArgs) -> anyhow::Result<Exit> {
    check_name(&a.name)?;
    let dir = root(ctx).join(&a.name);
    ctx.rt.block_on(async {
        let sb = Sandbox::start(sandbox_config(&a.name, &dir))
            .await
            .with_context(|| format!("cannot start sandbox {}", a.name))?;
        write_server_file(&dir, &sb.url())?;
        println!("sandbox {} serving at {}", a.name, sb.url());
        wait_for_stop_signal().await?;
        sb.shutdown().await?;
        let _ = std::fs::remove_file(dir.join(SERVER_FILE));
        anyhow::Ok(())
    })?;
    Ok(Exit::SUCCESS)
}

fn start_background(ctx: &Context, name: &str) -> anyhow::Result<ServerInfo> {
    use std::os::unix::process::CommandExt as _;
    let dir = root(ctx).join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join(SERVER_FILE));
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe =
        std::env::current_exe().context("cannot find the ferry binary to start the sandbox")?;
    let mut child = std::process::Command::new(exe)
        .args(["sandbox", "serve", "--name", name])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start the sandbox process")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(info) = running(&dir)
            && info.pid == child.id()
        {
            return Ok(info);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("sandbox {name} exited at start ({status}):\n{}", log.trim());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "sandbox {name} did not start within 30 s: see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn up(ctx: &Context, a: UpArgs) -> anyhow::Result<Exit> {
    let names = names_or_default(&a.names)?;
    if a.foreground {
        return up_foreground(ctx, &names);
    }
    for name in &names {
        let dir = root(ctx).join(name);
        match running(&dir) {
            Some(info) => say!(
                "sandbox {name} already runs at {} (pid {})",
                info.url,
                info.pid
            ),
            None => {
                let info = start_background(ctx, name)?;
                say!("sandbox {name} runs at {} (pid {})", info.url, info.pid);
            }
        }
    }
    if let Some(path) = write_kubeconfig(ctx)? {
        let entries: Vec<KubeconfigEntry> = names
            .iter()
            .filter_map(|n| {
                let dir = root(ctx).join(n);
                running(&dir).and_then(|i| sandbox::saved_entry(n, &dir, &i.url).ok())
            })
            .collect();
        print_usage(&path, &entries);
    }
    say!("Stop with: ferry sandbox down");
    Ok(Exit::SUCCESS)
}

fn up_foreground(ctx: &Context, names: &[String]) -> anyhow::Result<Exit> {
    for name in names {
        if let Some(info) = running(&root(ctx).join(name)) {
            bail!(
                "sandbox {name} already runs (pid {}): stop it with `ferry sandbox down --name {name}`",
                info.pid
            );
        }
    }
    ctx.rt.block_on(async {
        let mut sandboxes = Vec::new();
        for name in names {
            let dir = root(ctx).join(name);
            let sb = Sandbox::start(sandbox_config(name, &dir))
                .await
                .with_context(|| format!("cannot start sandbox {name}"))?;
            write_server_file(&dir, &sb.url())?;
            say!("sandbox {name} runs at {}", sb.url());
            sandboxes.push(sb);
        }
        if let Some(path) = write_kubeconfig(ctx)? {
            let entries: Vec<_> = sandboxes.iter().map(Sandbox::kubeconfig_entry).collect();
            print_usage(&path, &entries);
        }
        say!("Press Ctrl-C to stop.");
        wait_for_stop_signal().await?;
        for sb in sandboxes {
            let dir = root(ctx).join(sb.name());
            sb.shutdown().await?;
            let _ = std::fs::remove_file(dir.join(SERVER_FILE));
        }
        write_kubeconfig(ctx)?;
        anyhow::Ok(())
    })?;
    Ok(Exit::SUCCESS)
}

/// Stops the named sandboxes (all when none is named); returns those that were running.
fn down(ctx: &Context, names: &[String]) -> anyhow::Result<Vec<String>> {
    let names = if names.is_empty() {
        all_sandboxes(ctx)
    } else {
        names.to_vec()
    };
    let mut stopped = Vec::new();
    for name in &names {
        check_name(name)?;
        let dir = root(ctx).join(name);
        let Some(info) = running(&dir) else {
            continue;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(info.pid).unwrap_or(i32::MAX));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .with_context(|| format!("cannot stop sandbox {name} (pid {})", info.pid))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while pid_alive(info.pid) {
            if Instant::now() > deadline {
                bail!(
                    "sandbox {name} (pid {}) did not stop within 15 s: kill it with `kill -9 {}`",
                    info.pid,
                    info.pid
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(dir.join(SERVER_FILE));
        say!("sandbox {name} stopped");
        stopped.push(name.clone());
    }
    if stopped.is_empty() {
        say!("no sandbox was running");
    }
    write_kubeconfig(ctx)?;
    Ok(stopped)
}

fn status(ctx: &Context) -> anyhow::Result<Exit> {
    let names = all_sandboxes(ctx);
    if names.is_empty() {
        say!("no sandboxes yet: start one with `ferry sandbox up`");
        return Ok(Exit::SUCCESS);
    }
    for name in names {
        match running(&root(ctx).join(&name)) {
            Some(info) => say!("{name:<16} running  {}  pid {}", info.url, info.pid),
            None => say!("{name:<16} stopped"),
        }
    }
    let kc = kubeconfig_path(ctx);
    if kc.exists() {
        say!(
            "Kubeconfig: {} (export KUBECONFIG={})",
            kc.display(),
            kc.display()
        );
    }
    Ok(Exit::SUCCESS)
}

fn reset(ctx: &Context, a: NamesArgs) -> anyhow::Result<Exit> {
    let names = names_or_default(&a.names)?;
    let was_running = down(ctx, &names)?;
    for name in &names {
        let path = root(ctx).join(name).join(sandbox::STATE_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => say!("sandbox {name} reset"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                say!("sandbox {name} was already empty")
            }
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    if !was_running.is_empty() {
        up(
            ctx,
            UpArgs {
                names: was_running,
                foreground: false,
            },
        )?;
    }
    Ok(Exit::SUCCESS)
}

//! `ferry sandbox cloud up|down|status`: the sandbox cloud, a local EKS- and
//! STS-compatible endpoint (`ferry_sandbox::cloud`) whose clusters are sandboxes.
//!
//! `up` runs it as a background `ferry sandbox cloud serve` (or in this process with
//! `--foreground`) on 127.0.0.1 (port 4599 unless `--port`), with its folder at
//! `<data>/sandbox-cloud/`: `principals.json` (the test access keys, made the first
//! time), `aws-credentials` and `aws-config` (profiles `ferry-sandbox`, allowed to use
//! EKS, and `ferry-sandbox-no-eks`, which is not), `server.json`, `serve.log`, and a
//! folder per cluster. It prints what to put in `config.yaml` to link it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::{Context, Exit};
use ferry_sandbox::arm::{ArmConfig, AzurePrincipal};
use ferry_sandbox::cloud::{Cloud, CloudConfig};
use ferry_sandbox::iam::Principal;
use ferry_sandbox::write_atomic;

const DEFAULT_PORT: u16 = 4599;
const REGION: &str = "us-east-1";

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Start the sandbox cloud (EKS, STS and Azure ARM APIs on 127.0.0.1)
    Up(UpArgs),
    /// Stop it and every cluster it made
    Down,
    /// Whether it runs, where, and how to link it
    Status,
    /// Serve in this process (what `up` starts in the background)
    #[command(hide = true)]
    Serve(UpArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The port on 127.0.0.1
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Serve in this process until Ctrl-C instead of in the background
    #[arg(long)]
    pub foreground: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServerInfo {
    pid: u32,
    url: String,
}

fn dir(ctx: &Context) -> PathBuf {
    ctx.dirs.data.join("sandbox-cloud")
}

fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None).is_ok()
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("cloud"))
            .unwrap_or(true)
}

fn running(dir: &Path) -> Option<ServerInfo> {
    let info: ServerInfo =
        serde_json::from_slice(&std::fs::read(dir.join("server.json")).ok()?).ok()?;
    pid_alive(info.pid).then_some(info)
}

fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode_upper(b))
}

/// The cloud's principals, made the first time: `ferry` (may use EKS) and `no-eks`.
fn principals(dir: &Path) -> anyhow::Result<Vec<Principal>> {
    let path = dir.join("principals.json");
    if let Ok(bytes) = std::fs::read(&path) {
        return serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged: remove it", path.display()));
    }
    let make = |user: &str, eks: bool| -> anyhow::Result<Principal> {
        Ok(Principal {
            access_key_id: format!("AKIA{}", random_hex(8)?),
            secret_access_key: random_hex(20)?,
            user: user.into(),
            eks,
        })
    };
    let list = vec![make("ferry", true)?, make("no-eks", false)?];
    std::fs::create_dir_all(dir)?;
    write_atomic(&path, &serde_json::to_vec_pretty(&list)?)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(list)
}

fn uuid() -> anyhow::Result<String> {
    let h = random_hex(16)?.to_lowercase();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// The Azure tenant, principals and subscriptions, made the first time; and
/// `azure-env` with the `ferry` principal's variables.
fn azure(dir: &Path) -> anyhow::Result<ArmConfig> {
    let path = dir.join("azure.json");
    let config: ArmConfig = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is damaged: remove it", path.display()))?,
        Err(_) => {
            let (sub, empty) = (uuid()?, uuid()?);
            let config = ArmConfig {
                tenant: uuid()?,
                principals: vec![
                    AzurePrincipal {
                        client_id: uuid()?,
                        client_secret: random_hex(20)?,
                        name: "ferry".into(),
                        subscriptions: vec![sub.clone(), empty.clone()],
                    },
                    AzurePrincipal {
                        client_id: uuid()?,
                        client_secret: random_hex(20)?,
                        name: "reader".into(),
                        subscriptions: vec![],
                    },
                ],
                subscriptions: vec![sub, empty],
            };
            std::fs::create_dir_all(dir)?;
            write_atomic(&path, &serde_json::to_vec_pretty(&config)?)?;
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            config
        }
    };
    if let Some(p) = config.principals.first() {
        let env = format!(
            "export AZURE_TENANT_ID={}\nexport AZURE_CLIENT_ID={}\nexport AZURE_CLIENT_SECRET={}\n",
            config.tenant, p.client_id, p.client_secret
        );
        let env_path = dir.join("azure-env");
        write_atomic(&env_path, env.as_bytes())?;
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&env_path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(config)
}

/// Writes the AWS shared credentials and config files for the principals.
fn write_aws_files(dir: &Path, principals: &[Principal]) -> anyhow::Result<()> {
    let profile = |p: &Principal| {
        if p.eks {
            "ferry-sandbox".to_string()
        } else {
            format!("ferry-sandbox-{}", p.user)
        }
    };
    let mut creds = String::new();
    let mut config = String::new();
    for p in principals {
        creds.push_str(&format!(
            "[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n\n",
            profile(p),
            p.access_key_id,
            p.secret_access_key
        ));
        config.push_str(&format!("[profile {}]\nregion = {REGION}\n\n", profile(p)));
    }
    write_atomic(&dir.join("aws-credentials"), creds.as_bytes())?;
    write_atomic(&dir.join("aws-config"), config.as_bytes())?;
    Ok(())
}

pub fn run(ctx: &Context, cmd: CloudCommand) -> anyhow::Result<Exit> {
    match cmd {
        CloudCommand::Up(a) if a.foreground => serve(ctx, a, true),
        CloudCommand::Up(a) => up(ctx, a),
        CloudCommand::Serve(a) => serve(ctx, a, false),
        CloudCommand::Down => down(ctx),
        CloudCommand::Status => status(ctx),
    }
}

fn usage(dir: &Path, url: &str) {
    say!("Sandbox cloud (EKS and STS APIs) at {url}");
    say!("Sandbox cloud (Azure ARM and token endpoint) at {url}");
    say!("AWS profiles: ferry-sandbox (may use EKS), ferry-sandbox-no-eks (may not):");
    say!(
        "  export AWS_SHARED_CREDENTIALS_FILE={}",
        dir.join("aws-credentials").display()
    );
    say!(
        "  export AWS_CONFIG_FILE={}",
        dir.join("aws-config").display()
    );
    say!("Link it in config.yaml:");
    say!("  aws:");
    say!("    - profile: ferry-sandbox");
    say!("      regions: [{REGION}]");
    say!("      endpoint: {url}");
    say!("Create a cluster:");
    say!(
        "  ferry cluster create eks --profile ferry-sandbox --region {REGION} --name demo --version 1.33 \\"
    );
    say!(
        "    --role-arn arn:aws:iam::123456789012:role/eks --node-role arn:aws:iam::123456789012:role/node --subnet subnet-a --subnet subnet-b"
    );
    let Ok(azure) = azure(dir) else { return };
    say!("Azure service principal `ferry` (Contributor on both subscriptions):");
    say!("  source {}", dir.join("azure-env").display());
    say!("Link it in config.yaml:");
    say!("  azure:");
    for (sub, name) in azure
        .subscriptions
        .iter()
        .zip(["ferry-sandbox", "ferry-sandbox-empty"])
    {
        say!("    - id: {sub}");
        say!("      name: {name}");
        say!("      endpoint: {url}");
        say!("      authority: {url}");
    }
    say!("Create a cluster:");
    say!(
        "  ferry cluster create aks --subscription ferry-sandbox --resource-group demo --location westeurope --name demo --version 1.33"
    );
}

fn serve(ctx: &Context, a: UpArgs, interactive: bool) -> anyhow::Result<Exit> {
    let dir = dir(ctx);
    if let Some(info) = running(&dir)
        && info.pid != std::process::id()
    {
        bail!(
            "the sandbox cloud already runs at {} (pid {}): stop it with `ferry sandbox cloud down`",
            info.url,
            info.pid
        );
    }
    let principals = principals(&dir)?;
    write_aws_files(&dir, &principals)?;
    ctx.rt.block_on(async {
        let mut config = CloudConfig::new(dir.join("clusters"), principals);
        config.azure = azure(&dir)?;
        config.bind = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, a.port));
        let cloud = Cloud::start(config)
            .await
            .context("cannot start the sandbox cloud")?;
        let info = ServerInfo {
            pid: std::process::id(),
            url: cloud.endpoint(),
        };
        write_atomic(&dir.join("server.json"), &serde_json::to_vec(&info)?)?;
        if interactive {
            usage(&dir, &info.url);
            say!("Press Ctrl-C to stop.");
        } else {
            println!("sandbox cloud serving at {}", info.url);
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C")?,
            _ = term.recv() => {}
        }
        cloud.shutdown().await?;
        let _ = std::fs::remove_file(dir.join("server.json"));
        anyhow::Ok(())
    })?;
    Ok(Exit::SUCCESS)
}

fn up(ctx: &Context, a: UpArgs) -> anyhow::Result<Exit> {
    use std::os::unix::process::CommandExt as _;
    let dir = dir(ctx);
    if let Some(info) = running(&dir) {
        usage(&dir, &info.url);
        return Ok(Exit::SUCCESS);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join("server.json"));
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the ferry binary")?;
    let mut child = std::process::Command::new(exe)
        .args(["sandbox", "cloud", "serve", "--port", &a.port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start the sandbox cloud process")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let info = loop {
        if let Some(info) = running(&dir)
            && info.pid == child.id()
        {
            break info;
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!(
                "the sandbox cloud exited at start ({status}):\n{}",
                log.trim()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the sandbox cloud did not start within 30 s: see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    usage(&dir, &info.url);
    say!("Stop with: ferry sandbox cloud down");
    Ok(Exit::SUCCESS)
}

fn down(ctx: &Context) -> anyhow::Result<Exit> {
    let dir = dir(ctx);
    let Some(info) = running(&dir) else {
        say!("the sandbox cloud was not running");
        return Ok(Exit::SUCCESS);
    };
    let pid = nix::unistd::Pid::from_raw(i32::try_from(info.pid).unwrap_or(i32::MAX));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .with_context(|| format!("cannot stop the sandbox cloud (pid {})", info.pid))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pid_alive(info.pid) {
        if Instant::now() > deadline {
            bail!(
                "the sandbox cloud (pid {}) did not stop within 20 s: kill it with `kill -9 {}`",
                info.pid,
                info.pid
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(dir.join("server.json"));
    say!("the sandbox cloud stopped");
    Ok(Exit::SUCCESS)
}

fn status(ctx: &Context) -> anyhow::Result<Exit> {
    let dir = dir(ctx);
    match running(&dir) {
        Some(info) => {
            say!("running (pid {})", info.pid);
            usage(&dir, &info.url);
        }
        None => say!("stopped: start it with `ferry sandbox cloud up`"),
    }
    Ok(Exit::SUCCESS)
}

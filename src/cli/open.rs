//! Opening the repository a command names: location, credentials, throttling.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context as _, bail};

use super::Global;
use crate::config::Dirs;
use ferry_repo::Repository;
use ferry_repo::backend::local::LocalBackend;
use ferry_repo::backend::retry::{RetryPolicy, Retrying};
use ferry_repo::backend::s3::{S3Backend, S3Config};
use ferry_repo::backend::throttled::Throttled;
use ferry_repo::backend::{DynBackend, StoreStatus};
use ferry_repo::crypto::Secret;
use ferry_repo::progress::Progress;

/// What every command shares: options, directories, the async runtime.
#[derive(Debug)]
pub struct Context {
    pub global: Global,
    pub dirs: Dirs,
    pub rt: tokio::runtime::Runtime,
    /// The status of the storage [`Context::backend`] built, which every job's progress
    /// reports (waits for the object store, its notices).
    store: OnceLock<Arc<StoreStatus>>,
}

impl Context {
    pub fn new(global: Global) -> anyhow::Result<Context> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("ferry-io")
            .build()
            .context("cannot start the I/O runtime")?;
        Ok(Context {
            global,
            dirs: Dirs::discover(),
            rt,
            store: OnceLock::new(),
        })
    }

    /// True when no repository was named: the embedded default is used.
    pub fn is_default_repo(&self) -> bool {
        self.global.repo.is_none()
    }

    pub fn repo_location(&self) -> String {
        match &self.global.repo {
            Some(r) => r.clone(),
            None => self.dirs.default_repository().display().to_string(),
        }
    }

    /// The storage backend for the repository location, with bandwidth limits and
    /// retries (`--retry-budget`, `--connections`).
    pub fn backend(&self) -> anyhow::Result<DynBackend> {
        let loc = self.repo_location();
        let inner: DynBackend = if loc.starts_with("s3://") {
            let mut cfg = S3Config::parse_url(&loc)?;
            cfg.endpoint = self.global.s3_endpoint.clone();
            cfg.region = self.global.s3_region.clone();
            cfg.path_style = self.global.s3_path_style;
            cfg.profile = self.global.s3_profile.clone();
            Arc::new(self.rt.block_on(S3Backend::connect(cfg))?)
        } else if loc.contains("://") {
            bail!(
                "unsupported repository location {loc:?}: use a folder path or s3://bucket/prefix"
            );
        } else {
            Arc::new(LocalBackend::new(PathBuf::from(loc)))
        };
        let throttled =
            Throttled::wrap(inner, self.global.limit_upload, self.global.limit_download);
        let policy = match self.global.retry_budget {
            Some(budget) => RetryPolicy::with_budget(budget),
            None => RetryPolicy::default(),
        };
        let backend = Retrying::wrap(throttled, policy, self.global.connections.map(usize::from));
        if let Some(status) = backend.status() {
            let _ = self.store.set(status);
        }
        Ok(backend)
    }

    /// The secret the user gave, from (in order) --key-file, FERRY_KEY,
    /// --password-file or FERRY_PASSWORD, with where it came from; `None` if none was.
    pub fn given_secret(&self) -> anyhow::Result<Option<(Secret, String)>> {
        if let Some(f) = &self.global.key_file {
            return Ok(Some((
                read_key_file(f)?,
                format!("the key file {}", f.display()),
            )));
        }
        if let Ok(k) = std::env::var("FERRY_KEY")
            && !k.is_empty()
        {
            if k.len() as u64 > SECRET_FILE_MAX {
                bail!(
                    "FERRY_KEY is {} bytes long, more than a key can be ({SECRET_FILE_MAX}): set it to the key itself",
                    k.len()
                );
            }
            return Ok(Some((
                key_material(k.as_bytes(), "FERRY_KEY")?,
                "FERRY_KEY".into(),
            )));
        }
        if let Some(f) = &self.global.password_file {
            return Ok(Some((
                read_password_file(f)?,
                format!("the password in {}", f.display()),
            )));
        }
        if let Ok(pw) = std::env::var("FERRY_PASSWORD")
            && !pw.is_empty()
        {
            return Ok(Some((
                Secret::Password(pw),
                "the password in FERRY_PASSWORD".into(),
            )));
        }
        Ok(None)
    }

    /// The secret that opens the repository, from (in order) --key-file, FERRY_KEY,
    /// --password-file, FERRY_PASSWORD, the default repository's generated key, or a
    /// prompt on the terminal.
    pub fn secret(&self, confirm: bool) -> anyhow::Result<Secret> {
        if let Some((secret, _)) = self.given_secret()? {
            return Ok(secret);
        }
        if self.is_default_repo() && self.dirs.default_key_file().exists() {
            return read_key_file(&self.dirs.default_key_file());
        }
        if std::io::stdin().is_terminal() {
            let pw = rpassword::prompt_password(format!("Password for {}: ", self.repo_location()))
                .context("cannot read the password from the terminal")?;
            if confirm {
                let again = rpassword::prompt_password("Repeat the password: ")
                    .context("cannot read the password from the terminal")?;
                if again != pw {
                    bail!("the passwords do not match");
                }
            }
            if pw.is_empty() {
                bail!("an empty password is not allowed");
            }
            return Ok(Secret::Password(pw));
        }
        bail!(
            "no password or key for {}: set FERRY_PASSWORD, or pass --password-file or --key-file",
            self.repo_location()
        )
    }

    /// Opens the repository. The embedded default repository is created on first use.
    pub fn open(&self) -> anyhow::Result<Repository> {
        let backend = self.backend()?;
        if self.is_default_repo() && !self.dirs.default_repository().join("config").exists() {
            return super::init::create_default(self, backend);
        }
        let secret = self.secret(false)?;
        let repo = Repository::open(backend, self.rt.handle().clone(), &secret)
            .with_context(|| format!("cannot open the repository at {}", self.repo_location()))?;
        Ok(repo)
    }

    pub fn progress(&self) -> Arc<Progress> {
        let p = Arc::new(Progress::new());
        if let Some(status) = self.store.get() {
            p.watch_store(status.clone());
        }
        let pc = p.clone();
        self.rt.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: stopping cleanly (press Ctrl-C again to abort at once)");
                pc.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        p
    }
}

/// The most bytes of a key or password file Ferry reads: far more than any key
/// (Ferry's hold 65 bytes) or password, few enough that `--key-file /dev/zero` is
/// refused at once.
pub const SECRET_FILE_MAX: u64 = 64 * 1024;

/// Reads a file that must hold at most [`SECRET_FILE_MAX`] bytes.
fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    crate::config::read_limited(path, SECRET_FILE_MAX).map_err(|e| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            anyhow::anyhow!(
                "the {what} {} holds more than {} KiB, which no {what} does: check the path",
                path.display(),
                SECRET_FILE_MAX / 1024
            )
        } else {
            anyhow::anyhow!("cannot read the {what} {}: {e}", path.display())
        }
    })
}

/// Reads key material from a file (whitespace around it is ignored).
pub fn read_key_file(path: &Path) -> anyhow::Result<Secret> {
    let data = read_secret_file(path, "key file")?;
    key_material(&data, &format!("the key file {}", path.display()))
}

/// Reads a password from the first line of a file (without the line ending).
pub fn read_password_file(path: &Path) -> anyhow::Result<Secret> {
    let data = read_secret_file(path, "password file")?;
    let text = String::from_utf8(data).map_err(|_| {
        anyhow::anyhow!(
            "the password file {} is not UTF-8 text: check the path",
            path.display()
        )
    })?;
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(Secret::Password(pw))
}

/// Key material from a file or the environment: surrounding ASCII whitespace ignored,
/// at least 16 bytes (it is not stretched like a password, so it must be strong).
fn key_material(data: &[u8], what: &str) -> anyhow::Result<Secret> {
    let trimmed = data.trim_ascii().to_vec();
    if trimmed.len() < 16 {
        bail!(
            "{what} holds fewer than 16 bytes: too weak to be a key (use `ferry init --generate-key-file`)"
        );
    }
    Ok(Secret::KeyMaterial(trimmed))
}

/// Writes a new random key file (64 hex digits), readable only by the user.
pub fn generate_key_file(path: &Path) -> anyhow::Result<Secret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut key = [0u8; 32];
    ferry_repo::crypto::random_bytes(&mut key)?;
    let text = hex::encode(key);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    writeln!(f, "{text}")
        .with_context(|| format!("cannot write the key file {}", path.display()))?;
    f.sync_all().ok();
    Ok(Secret::KeyMaterial(text.into_bytes()))
}

//! `ferry init`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use super::{Context, Exit};
use ferry_repo::Repository;
use ferry_repo::backend::DynBackend;
use ferry_repo::crypto::KdfParams;
use ferry_repo::repo::InitOptions;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// zstd level for data that compresses (0 = off, 1 fastest .. 19 smallest)
    #[arg(long, default_value_t = 3)]
    pub compression: i32,
    /// Target pack file size in MiB
    #[arg(long, default_value_t = 32)]
    pub pack_size_mib: u32,
    /// Average chunk size in KiB (a power of two); min is a quarter, max four times it
    #[arg(long, default_value_t = 64)]
    pub chunk_avg_kib: u32,
    /// Generate a new random key file at this path and protect the repository with it
    #[arg(long, conflicts_with = "key_file")]
    pub generate_key_file: Option<PathBuf>,
    /// A label for the first key (e.g. who holds it)
    #[arg(long, default_value = "")]
    pub label: String,
}

fn options(a: &InitArgs) -> InitOptions {
    let avg = a.chunk_avg_kib.saturating_mul(1024);
    InitOptions {
        min_chunk: avg / 4,
        avg_chunk: avg,
        max_chunk: avg.saturating_mul(4),
        compression: a.compression,
        pack_size: a.pack_size_mib.saturating_mul(1024 * 1024),
        kdf: KdfParams::default(),
        key_label: a.label.clone(),
    }
}

pub fn run(ctx: &Context, a: InitArgs) -> anyhow::Result<Exit> {
    let backend = ctx.backend()?;
    let opts = options(&a);
    let secret = if let Some(path) = &a.generate_key_file {
        let s = super::open::generate_key_file(path)?;
        say!(
            "generated key file {} (keep a copy: the data cannot be read without it)",
            path.display()
        );
        s
    } else if ctx.is_default_repo() {
        let repo = create_default_with(ctx, backend, &opts)?;
        say!(
            "created repository {} at {}",
            repo.config().id.short(),
            ctx.repo_location()
        );
        return Ok(Exit::SUCCESS);
    } else {
        ctx.secret(true)?
    };
    let repo = Repository::init(backend, ctx.rt.handle().clone(), &secret, &opts)
        .with_context(|| format!("cannot create a repository at {}", ctx.repo_location()))?;
    say!(
        "created repository {} at {}",
        repo.config().id.short(),
        ctx.repo_location()
    );
    Ok(Exit::SUCCESS)
}

/// Creates the embedded default repository: protected by the password or key the user
/// gave (`--key-file`, `FERRY_KEY`, `--password-file`, `FERRY_PASSWORD`), else by a
/// generated key file.
pub fn create_default(ctx: &Context, backend: DynBackend) -> anyhow::Result<Repository> {
    create_default_with(ctx, backend, &InitOptions::default())
}

fn create_default_with(
    ctx: &Context,
    backend: DynBackend,
    opts: &InitOptions,
) -> anyhow::Result<Repository> {
    let key_path = ctx.dirs.default_key_file();
    let (secret, opened_by) = match ctx.given_secret()? {
        Some(given) => given,
        None if key_path.exists() => (
            super::open::read_key_file(&key_path)?,
            format!("the key file {}", key_path.display()),
        ),
        None => (
            super::open::generate_key_file(&key_path)?,
            format!("the key file {}", key_path.display()),
        ),
    };
    let repo =
        Repository::init(backend, ctx.rt.handle().clone(), &secret, opts).with_context(|| {
            format!(
                "cannot create the default repository at {}",
                ctx.repo_location()
            )
        })?;
    eprintln!(
        "created the default repository at {}, opened by {opened_by}: keep a copy of it, the data cannot be read without it",
        ctx.repo_location(),
    );
    Ok(repo)
}

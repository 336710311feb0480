//! `ferry key list|add|remove`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{Context, Exit};
use ferry_repo::crypto::{KdfParams, KeyKind, Secret};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys that open the repository
    List,
    /// Add a password or key file that opens the repository
    Add(AddArgs),
    /// Remove a key (not the one in use)
    Remove {
        /// Key ID prefix
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Read the new password from this file
    #[arg(long, conflicts_with_all = ["new_key_file", "generate_key_file"])]
    pub new_password_file: Option<PathBuf>,
    /// Use the contents of this existing file as the new key
    #[arg(long, conflicts_with = "generate_key_file")]
    pub new_key_file: Option<PathBuf>,
    /// Generate a new random key file at this path
    #[arg(long)]
    pub generate_key_file: Option<PathBuf>,
    /// A label (e.g. who holds the key)
    #[arg(long, default_value = "")]
    pub label: String,
}

pub fn run(ctx: &Context, cmd: KeyCommand) -> anyhow::Result<Exit> {
    let repo = ctx.open()?;
    match cmd {
        KeyCommand::List => {
            say!(
                "{:<1} {:<8}  {:<9}  {:<19}  {:<20}  {}",
                "",
                "ID",
                "KIND",
                "CREATED (UTC)",
                "USER@HOST",
                "LABEL"
            );
            for (name, k) in repo.list_keys()? {
                say!(
                    "{:<1} {:<8}  {:<9}  {:<19}  {:<20}  {}",
                    if name == repo.key_name() { "*" } else { "" },
                    &name[..8.min(name.len())],
                    match k.kind {
                        KeyKind::Password => "password",
                        KeyKind::KeyFile => "key file",
                    },
                    k.created.format("%Y-%m-%d %H:%M:%S"),
                    format!("{}@{}", k.username, k.host),
                    k.label
                );
            }
        }
        KeyCommand::Add(a) => {
            let secret = if let Some(p) = &a.generate_key_file {
                super::open::generate_key_file(p)?
            } else if let Some(p) = &a.new_key_file {
                super::open::read_key_file(p)?
            } else if let Some(p) = &a.new_password_file {
                super::open::read_password_file(p)?
            } else {
                let pw = rpassword::prompt_password("New password: ")
                    .context("cannot read the password")?;
                let again = rpassword::prompt_password("Repeat the new password: ")
                    .context("cannot read the password")?;
                anyhow::ensure!(pw == again, "the passwords do not match");
                anyhow::ensure!(!pw.is_empty(), "an empty password is not allowed");
                Secret::Password(pw)
            };
            let name = repo.add_key(&secret, KdfParams::default(), &a.label)?;
            say!("added key {}", &name[..8]);
        }
        KeyCommand::Remove { id } => {
            let name = repo.remove_key(&id)?;
            say!("removed key {}", &name[..8.min(name.len())]);
        }
    }
    Ok(Exit::SUCCESS)
}

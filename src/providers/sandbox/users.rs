//! Sandbox users: bearer tokens mapped to a user name and groups, kept in `tokens.json`
//! (owner-only). The server's token map is shared and mutable: a user added in-process
//! ([`super::Sandbox::add_user`]) or by another process (`ferry sandbox user add` writes
//! the file while the sandbox runs) can authenticate at once: an unknown token makes the
//! server re-read the file when it changed.
//!
//! Owns the token file and the token map. What a user may do is RBAC's business
//! (`rbac.rs`), not this module's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use parking_lot::RwLock;

use super::server::User;
use super::{SandboxError, TOKENS_FILE, TokenEntry, random_token, write_atomic};

/// The token map the server authenticates with.
pub struct TokenMap {
    inner: RwLock<Inner>,
}

struct Inner {
    users: HashMap<String, User>,
    path: PathBuf,
    /// The file's inode and modification time when last read: an atomic rewrite always
    /// changes the inode, even within one tick of the file system's clock.
    modified: Option<(u64, SystemTime)>,
}

fn modified(path: &Path) -> Option<(u64, SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.modified().ok()?))
}

impl TokenMap {
    /// The map of `entries`, as read from the token file in `dir`.
    pub(super) fn new(dir: &Path, entries: &[TokenEntry]) -> TokenMap {
        let path = dir.join(TOKENS_FILE);
        TokenMap {
            inner: RwLock::new(Inner {
                users: entries
                    .iter()
                    .map(|t| (t.token.clone(), t.user.clone()))
                    .collect(),
                modified: modified(&path),
                path,
            }),
        }
    }

    /// The user of `token`. An unknown token re-reads the token file if it changed.
    pub fn lookup(&self, token: &str) -> Option<User> {
        if let Some(u) = self.inner.read().users.get(token) {
            return Some(u.clone());
        }
        let mut inner = self.inner.write();
        let now = modified(&inner.path);
        if now.is_some() && now != inner.modified {
            if let Ok(entries) = read_entries(&inner.path) {
                inner.users = entries.into_iter().map(|t| (t.token, t.user)).collect();
            }
            inner.modified = now;
        }
        inner.users.get(token).cloned()
    }

    pub(super) fn insert(&self, token: String, user: User) {
        let mut inner = self.inner.write();
        inner.users.insert(token, user);
        inner.modified = modified(&inner.path);
    }
}

fn read_entries(path: &Path) -> Result<Vec<TokenEntry>, SandboxError> {
    let bytes = std::fs::read(path).map_err(|source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| SandboxError::State {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Writes the token file, readable by its owner only.
pub(super) fn write_entries(path: &Path, entries: &[TokenEntry]) -> Result<(), SandboxError> {
    let text =
        serde_json::to_vec_pretty(entries).map_err(|e| SandboxError::Internal(e.to_string()))?;
    // write_atomic creates the file 0600.
    write_atomic(path, &text)
}

fn check_user_name(name: &str) -> Result<(), SandboxError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(SandboxError::Invalid(format!(
            "{name:?} is not a valid user name: use 1 to 253 characters without spaces \
             (e.g. `dev` or `system:serviceaccount:qa:deployer`)"
        )));
    }
    Ok(())
}

/// Adds the user `name` with `groups` (plus `system:authenticated`) to the token file of
/// the sandbox in `dir` and returns its new bearer token. A running sandbox accepts the
/// token at once.
pub fn add_user(dir: &Path, name: &str, groups: &[String]) -> Result<(String, User), SandboxError> {
    check_user_name(name)?;
    for g in groups {
        if g.is_empty() || g.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SandboxError::Invalid(format!(
                "{g:?} is not a valid group name: use a non-empty name without spaces"
            )));
        }
    }
    let mut entries = super::load_or_create_tokens(dir)?;
    if entries.iter().any(|t| t.user.name == name) {
        return Err(SandboxError::Invalid(format!(
            "the sandbox already has a user named {name:?}: choose another name \
             (`ferry sandbox user list` shows the users)"
        )));
    }
    let mut all_groups: Vec<String> = Vec::new();
    for g in groups
        .iter()
        .map(String::as_str)
        .chain(["system:authenticated"])
    {
        if !all_groups.iter().any(|x| x == g) {
            all_groups.push(g.to_string());
        }
    }
    let user = User {
        name: name.to_string(),
        groups: all_groups,
    };
    let token = random_token()?;
    entries.push(TokenEntry {
        token: token.clone(),
        user: user.clone(),
    });
    write_entries(&dir.join(TOKENS_FILE), &entries)?;
    Ok((token, user))
}

/// The users of the sandbox in `dir` with their tokens, in the order they were added.
pub fn users(dir: &Path) -> Result<Vec<(User, String)>, SandboxError> {
    Ok(super::load_or_create_tokens(dir)?
        .into_iter()
        .map(|t| (t.user, t.token))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_users_are_found_by_a_running_map() {
        let dir = tempfile::tempdir().unwrap();
        let entries = super::super::load_or_create_tokens(dir.path()).unwrap();
        let map = TokenMap::new(dir.path(), &entries);
        // Another process adds a user: the map sees it on the first unknown token.
        let (token, user) = add_user(dir.path(), "dev", &["developers".into()]).unwrap();
        assert_eq!(user.groups, ["developers", "system:authenticated"]);
        assert_eq!(map.lookup(&token).unwrap().name, "dev");
        assert!(map.lookup("nope").is_none());
        assert!(matches!(
            add_user(dir.path(), "dev", &[]),
            Err(SandboxError::Invalid(_))
        ));
        assert!(add_user(dir.path(), "a b", &[]).is_err());
        let names: Vec<String> = users(dir.path())
            .unwrap()
            .into_iter()
            .map(|(u, _)| u.name)
            .collect();
        assert_eq!(names, ["admin", "viewer", "dev"]);
    }
}

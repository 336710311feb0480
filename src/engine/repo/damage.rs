//! What damage affects: the one reckoning `check` and `restore` share, so that they
//! agree on which snapshots, or parts of one, cannot be read.
//!
//! A part of a snapshot is readable when every tree below it loads (its blob is indexed,
//! decrypts and parses, and its names are safe) and every blob its files need is listed
//! by the loaded index in a pack not known to be damaged. Which packs are known damaged
//! is the caller's knowledge: `check` lists the storage (and with `--read-data` reads
//! it); `restore` knows none in advance and meets a missing pack when it reads it.
//! What to do about the damage found ([`advice`]) is worded here too.

use std::fmt;
use std::path::Path;

use super::id::{Id, IdMap, IdSet};
use super::snapshot::Snapshot;
use super::tree::{Node, Tree};
use super::{Error, Repository};

/// One thing that keeps part of a snapshot from being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob no loaded index file lists (an index file is lost or damaged).
    NotIndexed(Id),
    /// A blob in a pack that is missing, truncated or damaged.
    InDamagedPack { blob: Id, pack: Id },
    /// A tree that does not load.
    Tree { id: Id, error: String },
    /// A tree holding a name that would escape its folder.
    UnsafeName { tree: Id, name: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotIndexed(id) => write!(f, "blob {id} is in no index"),
            Problem::InDamagedPack { blob, pack } => write!(
                f,
                "blob {} is in damaged pack {}",
                blob.short(),
                pack.short()
            ),
            Problem::Tree { id, error } => write!(f, "tree {}: {error}", id.short()),
            Problem::UnsafeName { tree, name } => {
                write!(f, "tree {} holds the unsafe name {name:?}", tree.short())
            }
        }
    }
}

/// What to do about `problems`; `index_unreadable` when index files could not be read.
pub fn advice(problems: &[Problem], index_unreadable: bool) -> String {
    let not_indexed = problems.iter().any(|p| matches!(p, Problem::NotIndexed(_)));
    let lost = problems
        .iter()
        .any(|p| !matches!(p, Problem::NotIndexed(_)));
    let mut out = Vec::new();
    if not_indexed || index_unreadable {
        out.push(
            "An index file is missing or damaged: run `ferry repair-index` to rebuild the index from the packs, then try again",
        );
    }
    if lost {
        out.push(
            "Data in damaged packs or trees is lost: restore another snapshot, or the intact parts of this one with --path (`ferry check` lists what is affected)",
        );
    }
    out.join(". ")
}

/// A short account of `problems` for one error message: how many, and the first few.
pub fn summary(problems: &[Problem]) -> String {
    const SHOWN: usize = 3;
    let mut parts: Vec<String> = problems.iter().take(SHOWN).map(|p| p.to_string()).collect();
    if problems.len() > SHOWN {
        parts.push(format!("and {} more", problems.len() - SHOWN));
    }
    parts.join("; ")
}

/// Walks trees and says whether they can be read, remembering trees already seen.
pub struct Reach<'a> {
    repo: &'a Repository,
    damaged: &'a IdSet,
    seen: IdMap<bool>,
}

/// What [`Reach::walk`] calls for every node below the walked one, with its path.
pub type Visit<'v> = &'v mut dyn FnMut(&Path, &Node);

impl<'a> Reach<'a> {
    /// Reads trees through `repo`'s loaded index; blobs in `damaged` packs are lost.
    pub fn new(repo: &'a Repository, damaged: &'a IdSet) -> Reach<'a> {
        Reach {
            repo,
            damaged,
            seen: IdMap::default(),
        }
    }

    /// Whether every part of snapshot `s` can be read; what cannot goes to `problems`.
    pub fn snapshot(&mut self, s: &Snapshot, problems: &mut Vec<Problem>) -> bool {
        let mut ok = true;
        for root in s.roots() {
            ok &= self.tree(&root, None, problems);
        }
        ok
    }

    /// Whether all of `node` (a file's content, or a folder and everything below it)
    /// can be read. `visit` sees every node below a folder, parents first, with its path
    /// under `prefix`; nodes of trees that do not load are not visited.
    pub fn walk(
        &mut self,
        node: &Node,
        prefix: &Path,
        visit: Visit<'_>,
        problems: &mut Vec<Problem>,
    ) -> bool {
        let mut ok = self.content(node, problems);
        if let Some(sub) = &node.subtree {
            ok &= self.tree(sub, Some((prefix, visit)), problems);
        }
        ok
    }

    fn blob(&self, id: &Id, problems: &mut Vec<Problem>) -> bool {
        match self.repo.index().get(id) {
            None => {
                problems.push(Problem::NotIndexed(*id));
                false
            }
            Some(loc) if self.damaged.contains(&loc.pack) => {
                problems.push(Problem::InDamagedPack {
                    blob: *id,
                    pack: loc.pack,
                });
                false
            }
            Some(_) => true,
        }
    }

    fn content(&self, node: &Node, problems: &mut Vec<Problem>) -> bool {
        let mut ok = true;
        for c in &node.content {
            ok &= self.blob(c, problems);
        }
        ok
    }

    fn tree(
        &mut self,
        id: &Id,
        mut visit: Option<(&Path, Visit<'_>)>,
        problems: &mut Vec<Problem>,
    ) -> bool {
        // A tree met again is not examined again, unless its nodes must be visited.
        if visit.is_none()
            && let Some(ok) = self.seen.get(id)
        {
            return *ok;
        }
        if !self.blob(id, problems) {
            self.seen.insert(*id, false);
            return false;
        }
        let tree = match Tree::load(self.repo, id) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem::Tree {
                    id: *id,
                    error: tree_error(e),
                });
                self.seen.insert(*id, false);
                return false;
            }
        };
        let mut ok = true;
        for n in &tree.nodes {
            if !n.name.is_safe() {
                problems.push(Problem::UnsafeName {
                    tree: *id,
                    name: n.name.lossy(),
                });
                ok = false;
                continue;
            }
            ok &= self.content(n, problems);
            match visit.as_mut() {
                Some((prefix, f)) => {
                    let p = prefix.join(n.name.to_os());
                    f(&p, n);
                    if let Some(sub) = &n.subtree {
                        ok &= self.tree(sub, Some((&p, &mut **f)), problems);
                    }
                }
                None => {
                    if let Some(sub) = &n.subtree {
                        ok &= self.tree(sub, None, problems);
                    }
                }
            }
        }
        self.seen.insert(*id, ok);
        ok
    }
}

/// A tree's load error without the generic advice the engine error appends.
fn tree_error(e: Error) -> String {
    match e {
        Error::Damaged { detail, .. } => detail,
        other => other.to_string(),
    }
}

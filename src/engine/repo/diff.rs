//! Differences between two snapshots' trees.

use std::path::{Path, PathBuf};

use super::id::Id;
use super::tree::{Node, NodeKind, Tree};
use super::{Repository, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    /// Content changed.
    Modified,
    /// Only metadata (mode, owner, times) changed.
    Metadata,
    /// A different kind of entry with the same name.
    TypeChanged,
}

impl Change {
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
            Change::TypeChanged => 'T',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    pub path: PathBuf,
    pub change: Change,
    pub kind: NodeKind,
    pub size_before: u64,
    pub size_after: u64,
}

/// Compares two trees; identical subtrees (same ID) are skipped without loading.
pub fn diff(repo: &Repository, a: &Id, b: &Id) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    diff_trees(repo, Some(a), Some(b), Path::new(""), &mut out)?;
    Ok(out)
}

fn load(repo: &Repository, id: Option<&Id>) -> Result<Tree> {
    match id {
        Some(id) => Tree::load(repo, id),
        None => Ok(Tree::default()),
    }
}

fn entry(path: PathBuf, change: Change, n: &Node, before: u64, after: u64) -> DiffEntry {
    DiffEntry {
        path,
        change,
        kind: n.kind,
        size_before: before,
        size_after: after,
    }
}

fn diff_trees(
    repo: &Repository,
    a: Option<&Id>,
    b: Option<&Id>,
    prefix: &Path,
    out: &mut Vec<DiffEntry>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (load(repo, a)?, load(repo, b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let na = ta.nodes.get(i);
        let nb = tb.nodes.get(j);
        let ord = match (na, nb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match (ord, na, nb) {
            (std::cmp::Ordering::Less, Some(x), _) => {
                let p = prefix.join(x.name.to_os());
                out.push(entry(p.clone(), Change::Removed, x, x.size, 0));
                if x.subtree.is_some() {
                    diff_trees(repo, x.subtree.as_ref(), None, &p, out)?;
                }
                i += 1;
            }
            (std::cmp::Ordering::Greater, _, Some(y)) => {
                let p = prefix.join(y.name.to_os());
                out.push(entry(p.clone(), Change::Added, y, 0, y.size));
                if y.subtree.is_some() {
                    diff_trees(repo, None, y.subtree.as_ref(), &p, out)?;
                }
                j += 1;
            }
            (_, Some(x), Some(y)) => {
                let p = prefix.join(y.name.to_os());
                if x.kind != y.kind {
                    out.push(entry(p.clone(), Change::TypeChanged, y, x.size, y.size));
                } else if x.content != y.content || x.target != y.target || x.size != y.size {
                    out.push(entry(p.clone(), Change::Modified, y, x.size, y.size));
                } else if x.kind != NodeKind::Dir
                    && (x.mode != y.mode
                        || x.uid != y.uid
                        || x.gid != y.gid
                        || x.mtime_ns != y.mtime_ns)
                {
                    out.push(entry(p.clone(), Change::Metadata, y, x.size, y.size));
                }
                if x.subtree.is_some() || y.subtree.is_some() {
                    diff_trees(repo, x.subtree.as_ref(), y.subtree.as_ref(), &p, out)?;
                }
                i += 1;
                j += 1;
            }
            _ => break,
        }
    }
    Ok(())
}

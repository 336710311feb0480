//! File trees as the repository stores them: one tree blob per directory, listing its
//! entries (sorted by name bytes) with their metadata and content.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::id::{Id, IdMap};
use super::pack::BlobType;
use super::{Error, Repository, Result};

/// A file name or symlink target: any bytes. Stored as a JSON string when it is UTF-8,
/// else as `{"hex": "..."}`, so names that are not UTF-8 survive exactly.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Name(pub Vec<u8>);

impl Name {
    pub fn from_os(s: &OsStr) -> Name {
        Name(s.as_bytes().to_vec())
    }
    pub fn to_os(&self) -> OsString {
        OsString::from_vec(self.0.clone())
    }
    /// A single path component: not empty, `.` or `..`, without `/` or NUL. Trees are
    /// authenticated, but a restore still never follows a name out of its target.
    pub fn is_safe(&self) -> bool {
        !self.0.is_empty()
            && self.0 != b"."
            && self.0 != b".."
            && !self.0.iter().any(|b| *b == b'/' || *b == 0)
    }

    /// For display: lossy UTF-8.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NameRepr {
    Utf8(String),
    Raw { hex: String },
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => NameRepr::Utf8(t.to_string()).serialize(s),
            Err(_) => NameRepr::Raw {
                hex: hex::encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match NameRepr::deserialize(d)? {
            NameRepr::Utf8(s) => Ok(Name(s.into_bytes())),
            NameRepr::Raw { hex } => hex::decode(hex).map(Name).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Name,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission and special bits (the low 12 bits of st_mode).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Times in nanoseconds since the Unix epoch. Access times are not recorded: any
    /// reader changes them, and recording them would make every backup store new
    /// trees; a restore sets the access time to the modification time.
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub device: u64,
    pub links: u64,
    #[serde(default)]
    pub size: u64,
    /// File contents: data blob IDs in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// The file had holes: all-zero chunks are restored as holes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sparse: bool,
    /// Directories: the tree blob of their entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Symlinks: the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Name>,
    /// Devices: the device number.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A directory's entries, sorted by name bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn load(repo: &Repository, id: &Id) -> Result<Tree> {
        let data = repo.load_blob(id)?;
        serde_json::from_slice(&data).map_err(|e| Error::Damaged {
            what: format!("tree {id}"),
            detail: e.to_string(),
        })
    }

    /// Stores a tree through `save` and returns its ID.
    pub fn save(&self, save: impl FnOnce(BlobType, &[u8]) -> Result<Id>) -> Result<Id> {
        save(BlobType::Tree, &self.to_bytes())
    }
}

/// A node with the metadata of a folder nobody described (an implicit parent).
pub fn dir_node(name: &[u8]) -> Node {
    Node {
        name: Name(name.to_vec()),
        kind: NodeKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        inode: 0,
        device: 0,
        links: 1,
        size: 0,
        content: Vec::new(),
        sparse: false,
        subtree: None,
        target: None,
        rdev: 0,
    }
}

/// Finds the node at `path` (components separated by `/`) below the tree `root`.
/// An empty path means the root itself, returned as a synthetic directory node.
pub fn find_path(repo: &Repository, root: &Id, path: &str) -> Result<Option<Node>> {
    let mut node = dir_node(b"/");
    node.subtree = Some(*root);
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let Some(sub) = node.subtree else {
            return Ok(None);
        };
        let tree = Tree::load(repo, &sub)?;
        match tree.find(comp.as_bytes()) {
            Some(n) => node = n.clone(),
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

/// Visits every node below `root` depth-first, with its path relative to `root`.
/// `visit` returns whether to descend into a directory.
pub fn walk(
    repo: &Repository,
    root: &Id,
    prefix: &std::path::Path,
    visit: &mut dyn FnMut(&std::path::Path, &Node) -> Result<bool>,
) -> Result<()> {
    let tree = Tree::load(repo, root)?;
    for n in &tree.nodes {
        if !n.name.is_safe() {
            return Err(Error::Damaged {
                what: format!("tree {root}"),
                detail: format!("it holds the unsafe name {:?}", n.name.lossy()),
            });
        }
        let p = prefix.join(n.name.to_os());
        let descend = visit(&p, n)?;
        if descend && let Some(sub) = &n.subtree {
            walk(repo, sub, &p, visit)?;
        }
    }
    Ok(())
}

/// Every file below `root`, in the order [`walk`] visits them. The trees are read a
/// level at a time, each level in one batch ([`reads::load_blobs`](super::reads::load_blobs)):
/// a capture's object documents are tens of thousands of files in thousands of
/// folders, which one read per folder makes slow.
pub fn files_below(repo: &Repository, root: &Id) -> Result<Vec<Node>> {
    let mut trees: IdMap<Tree> = IdMap::default();
    let mut level = vec![*root];
    while !level.is_empty() {
        level.sort();
        level.dedup();
        level.retain(|id| !trees.contains_key(id));
        let blobs = super::reads::load_blobs(repo, &level, None)?;
        let mut next = Vec::new();
        for (id, data) in level.iter().zip(blobs) {
            let tree: Tree = serde_json::from_slice(&data).map_err(|e| Error::Damaged {
                what: format!("tree {id}"),
                detail: e.to_string(),
            })?;
            if let Some(n) = tree.nodes.iter().find(|n| !n.name.is_safe()) {
                return Err(Error::Damaged {
                    what: format!("tree {id}"),
                    detail: format!("it holds the unsafe name {:?}", n.name.lossy()),
                });
            }
            next.extend(tree.nodes.iter().filter_map(|n| n.subtree));
            trees.insert(*id, tree);
        }
        level = next;
    }
    fn depth_first(trees: &IdMap<Tree>, id: &Id, out: &mut Vec<Node>) {
        for n in trees
            .get(id)
            .map(|t| t.nodes.as_slice())
            .unwrap_or_default()
        {
            if n.kind == NodeKind::File {
                out.push(n.clone());
            }
            if let Some(sub) = &n.subtree {
                depth_first(trees, sub, out);
            }
        }
    }
    let mut out = Vec::new();
    depth_first(&trees, root, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_utf8_round_trip() {
        let n = Name(vec![b'a', 0xff, 0xfe, b'b']);
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains("hex"));
        assert_eq!(serde_json::from_str::<Name>(&json).unwrap(), n);
        let u = Name(b"plain.txt".to_vec());
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"plain.txt\"");
        assert_eq!(serde_json::from_str::<Name>("\"plain.txt\"").unwrap(), u);
    }
}

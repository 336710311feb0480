//! Volume data in the benches: what a folder holds, and whether a restored copy is the
//! same (where a claim's data lives: `tests/support/volumes.rs`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Every regular file below `dir`.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

/// The bytes of the files below `dir`.
pub fn du(dir: &Path) -> u64 {
    files(dir)
        .iter()
        .map(|p| std::fs::symlink_metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Every file of `a` is in `b` with the same bytes.
pub fn same_files(a: &Path, b: &Path) -> bool {
    files(a).iter().all(|p| {
        let rel = p.strip_prefix(a).unwrap();
        std::fs::read(p).ok() == std::fs::read(b.join(rel)).ok()
    })
}

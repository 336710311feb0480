//! A folder of a snapshot (a captured volume's files, or a folder backup's): folders
//! first, then files with their size, mode and modification time. Folders are loaded
//! one at a time as they are opened (`tasks::snapshot_dir`).

use crate::app::{DirData, Row, Tone};
use crate::format;
use ferry_repo::tree::{Node, NodeKind};

/// The row key of an entry: its name, or `hex:…` when the name is not UTF-8.
pub fn node_key(n: &Node) -> String {
    match std::str::from_utf8(&n.name.0) {
        Ok(s) => s.to_string(),
        Err(_) => format!("hex:{}", hex::encode(&n.name.0)),
    }
}

fn row(n: &Node) -> Row {
    let mut name = n.name.lossy();
    let size = match n.kind {
        NodeKind::Dir => {
            name.push('/');
            "-".to_string()
        }
        NodeKind::File => format::bytes(n.size),
        _ => "-".into(),
    };
    if let Some(t) = &n.target {
        name.push_str(" → ");
        name.push_str(&t.lossy());
    }
    Row::new(
        node_key(n),
        vec![
            name,
            size,
            format::mode(n.kind, n.mode),
            format::time_ns(n.mtime_ns),
        ],
    )
    .tone(match n.kind {
        NodeKind::Dir | NodeKind::File => Tone::Normal,
        _ => Tone::Dim,
    })
}

/// A folder's entries in display order with their rows.
pub fn dir_data(mut nodes: Vec<Node>) -> DirData {
    nodes.sort_by(|a, b| {
        (a.kind != NodeKind::Dir)
            .cmp(&(b.kind != NodeKind::Dir))
            .then_with(|| a.name.cmp(&b.name))
    });
    let rows = nodes.iter().map(row).collect();
    DirData { nodes, rows }
}

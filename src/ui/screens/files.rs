//! A folder of a snapshot (a captured volume's files, or a folder backup's): folders
//! first, then files with their size, mode and modification time. Folders are loaded
//! one at a time as they are opened (`tasks::snapshot_dir`).

use std::borrow::Cow;

use ratatui::layout::Constraint;

use crate::app::{App, DirData, Load, Row, Tone, View};
use crate::format;
use crate::keymap::Command;
use crate::page::{self, Offer, Page};
use ferry_repo::tree::{Node, NodeKind};

/// A folder of a snapshot.
pub struct Files;

const OFFERS: &[Offer] = &[
    Offer::new(Command::Enter, "open the folder").hint("open"),
    Offer::new(
        Command::Download,
        "restore the file or folder to this machine",
    )
    .hint("restore here"),
    Offer::new(Command::Restore, "restore this snapshot (wizard)").changes(),
];

impl Page for Files {
    fn name(&self) -> &'static str {
        "a snapshot's files"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &["NAME", "SIZE", "MODE", "MODIFIED"],
            vec![Fill(3), Length(10), Length(10), Length(19)],
        )
    }

    fn offers(&self) -> &'static [Offer] {
        OFFERS
    }

    fn rows<'a>(&self, app: &'a App, view: &View) -> Load<Cow<'a, [Row]>> {
        let View::Files { id, path, .. } = view else {
            return Load::Loading;
        };
        page::held(app.dirs.get(&(id.clone(), path.clone())), |d| &d.rows)
    }

    fn load(&self, app: &mut App, view: &View, force: bool) {
        let View::Files { id, path, .. } = view else {
            return;
        };
        let key = (id.clone(), path.clone());
        if (force || !app.dirs.contains_key(&key))
            && let Some(snap) = app.find_snapshot(id).cloned()
        {
            app.dirs.insert(key, Load::Loading);
            app.tasks.snapshot_dir(app.repository(), snap, path.clone());
        }
    }

    fn run(&self, app: &mut App, view: &View, command: Command) {
        let View::Files { id, base, path } = view else {
            return;
        };
        match command {
            Command::Enter => match app.selected_node() {
                Some(n) if n.kind == NodeKind::Dir => match std::str::from_utf8(&n.name.0) {
                    Ok(name) => {
                        let path = if path.is_empty() {
                            name.to_string()
                        } else {
                            format!("{path}/{name}")
                        };
                        app.push(View::Files {
                            id: id.clone(),
                            base: base.clone(),
                            path,
                        })
                    }
                    Err(_) => app.say(
                        Tone::Warn,
                        "this folder's name is not UTF-8: list it with `ferry ls`",
                    ),
                },
                Some(_) => {
                    let keys = app.env.keymap.keys_for(Command::Download).join("/");
                    app.say(
                        Tone::Normal,
                        format!("{keys} restores it to a folder of this machine"),
                    )
                }
                None => {}
            },
            Command::Download => app.open_restore_prompt(view),
            Command::Restore => app.open_restore_wizard(view),
            _ => {}
        }
    }
}

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

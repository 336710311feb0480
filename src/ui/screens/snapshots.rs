//! Snapshots of the repository, and one snapshot's volumes (each opens as a file tree,
//! see `files.rs`) and objects.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ratatui::layout::Constraint;
use serde_json::Value;

use crate::app::{App, Load, Row, Tone, VOLUMES_PREFIX, View};
use crate::format;
use crate::keymap::Command;
use crate::page::{self, DESCRIBE, Offer, Page, YAML, YAML_PANE};
use crate::screens::workloads::object_key;
use ferry_k8s::capture::CaptureMeta;
use ferry_k8s::objects::ObjRef;
use ferry_repo::snapshot::Snapshot;

/// The snapshots of the repository.
pub struct Snapshots;

/// One snapshot: its volumes and objects.
pub struct SnapshotDetail;

const SNAPSHOTS: &[Offer] = &[
    Offer::new(
        Command::Enter,
        "open the snapshot (a folder backup: its files)",
    )
    .hint("open"),
    Offer::new(Command::Restore, "restore it (wizard)")
        .hint("restore")
        .changes(),
];

const DETAIL: &[Offer] = &[
    Offer::new(
        Command::Enter,
        "browse a volume's files, or show the object's YAML",
    )
    .hint("open"),
    Offer::new(Command::Download, "restore the volume to this machine").hint("restore here"),
    Offer::new(Command::Restore, "restore this snapshot (wizard)")
        .hint("restore")
        .changes(),
    YAML,
    YAML_PANE,
    DESCRIBE,
];

impl Page for Snapshots {
    fn name(&self) -> &'static str {
        "snapshots"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length, Min};
        (
            &[
                "TIME",
                "ID",
                "SOURCE",
                "NAMESPACES",
                "OBJECTS",
                "VOLUMES",
                "SIZE",
                "NEW",
                "STORED",
            ],
            vec![
                Length(19),
                Length(8),
                Min(16),
                Fill(2),
                Length(7),
                Length(7),
                Length(9),
                Length(9),
                Length(9),
            ],
        )
    }

    /// Stored, new, objects, volumes, size: the time, ID, source and namespaces stay.
    fn narrow(&self) -> &'static [usize] {
        &[8, 7, 4, 5, 6]
    }

    fn offers(&self) -> &'static [Offer] {
        SNAPSHOTS
    }

    fn rows<'a>(&self, app: &'a App, _: &View) -> Load<Cow<'a, [Row]>> {
        page::held(app.snapshots.as_ref(), |d| &d.rows)
    }

    fn load(&self, app: &mut App, _: &View, force: bool) {
        if force || app.snapshots.is_none() {
            app.snapshots = Some(Load::Loading);
            app.tasks.snapshots(app.repository());
        }
    }

    fn run(&self, app: &mut App, view: &View, command: Command) {
        match command {
            Command::Enter => {
                let Some(row) = app.selected_row() else {
                    return;
                };
                // A folder backup has no objects: its files are what there is to see.
                let folder = app
                    .find_snapshot(&row.key)
                    .is_some_and(|s| CaptureMeta::of(s).is_none());
                app.push(if folder {
                    View::Files {
                        id: row.key,
                        base: String::new(),
                        path: String::new(),
                    }
                } else {
                    View::Snapshot { id: row.key }
                })
            }
            Command::Restore => app.open_restore_wizard(view),
            _ => {}
        }
    }
}

impl Page for SnapshotDetail {
    fn name(&self) -> &'static str {
        "a snapshot"
    }

    fn columns(&self) -> (&'static [&'static str], Vec<Constraint>) {
        use Constraint::{Fill, Length};
        (
            &["TYPE", "NAMESPACE", "NAME", "DETAIL"],
            vec![Length(22), Length(16), Fill(2), Fill(3)],
        )
    }

    /// The detail first.
    fn narrow(&self) -> &'static [usize] {
        &[3]
    }

    fn offers(&self) -> &'static [Offer] {
        DETAIL
    }

    fn rows<'a>(&self, app: &'a App, view: &View) -> Load<Cow<'a, [Row]>> {
        match view {
            View::Snapshot { id } => Load::Ready(Cow::Owned(detail_rows(app, id))),
            _ => Load::Loading,
        }
    }

    fn load(&self, app: &mut App, view: &View, force: bool) {
        let View::Snapshot { id } = view else {
            return;
        };
        if (force || !app.snapshot_objects.contains_key(id))
            && let Some(snap) = app.find_snapshot(id).cloned()
        {
            app.snapshot_objects.insert(id.clone(), Load::Loading);
            app.tasks.snapshot_objects(app.repository(), snap);
        }
    }

    fn run(&self, app: &mut App, view: &View, command: Command) {
        let View::Snapshot { id } = view else {
            return;
        };
        match command {
            Command::Enter => {
                let Some(row) = app.selected_row() else {
                    return;
                };
                match row.key.strip_prefix("vol:") {
                    Some(claim) => {
                        let base = format!("{VOLUMES_PREFIX}{claim}");
                        app.push(View::Files {
                            id: id.clone(),
                            path: base.clone(),
                            base,
                        })
                    }
                    None if row.key == "folder" => app.push(View::Files {
                        id: id.clone(),
                        base: String::new(),
                        path: String::new(),
                    }),
                    None => app.toggle_yaml(),
                }
            }
            Command::YamlPane => app.toggle_yaml(),
            Command::Yaml => app.open_yaml(),
            Command::Describe => app.open_describe(),
            Command::Download => app.open_restore_prompt(view),
            Command::Restore => app.open_restore_wizard(view),
            _ => {}
        }
    }

    fn object<'a>(&self, app: &'a App, view: &View, key: &str) -> Option<&'a Value> {
        let View::Snapshot { id } = view else {
            return None;
        };
        app.snapshot_objects
            .get(id)
            .and_then(Load::ready)
            .and_then(|objs| objs.iter().find(|o| object_key(o) == key))
    }

    fn objects<'a>(&self, app: &'a App, view: &View) -> &'a [Value] {
        let View::Snapshot { id } = view else {
            return &[];
        };
        app.snapshot_objects
            .get(id)
            .and_then(Load::ready)
            .map_or(&[], Vec::as_slice)
    }
}

/// Newest first (the loader sorts them so).
pub fn rows(all: &[Snapshot]) -> Vec<Row> {
    all.iter()
        .map(|s| {
            let meta = CaptureMeta::of(s);
            let (source, namespaces, objects, volumes) = match &meta {
                Some(m) => (
                    m.cluster.clone(),
                    m.namespaces.join(","),
                    m.objects.to_string(),
                    m.volumes.len().to_string(),
                ),
                None => (
                    format!("{}:{}", s.host, s.paths.join(",")),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ),
            };
            Row::new(
                s.id.to_hex(),
                vec![
                    s.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                    s.id.short(),
                    source,
                    namespaces,
                    objects,
                    volumes,
                    format::bytes(s.summary.bytes),
                    format::bytes(s.summary.bytes_new),
                    format::bytes(s.summary.bytes_stored),
                ],
            )
            .tone(if meta.is_some() {
                Tone::Normal
            } else {
                Tone::Dim
            })
        })
        .collect()
}

/// A snapshot's volumes (from its capture record) then its objects by kind.
pub fn detail_rows(app: &App, id: &str) -> Vec<Row> {
    let Some(snap) = app.find_snapshot(id) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let Some(meta) = CaptureMeta::of(snap) else {
        out.push(Row::new(
            "folder",
            vec![
                "folder backup".into(),
                "-".into(),
                snap.paths.join(","),
                "enter: browse its files".into(),
            ],
        ));
        return out;
    };
    out.push(Row::group(format!(
        "from {} ({}) · {} objects · {} volume(s)",
        meta.cluster,
        meta.server_version,
        meta.objects,
        meta.volumes.len()
    )));
    for v in &meta.volumes {
        out.push(Row::new(
            format!("vol:{}/{}", v.namespace, v.pvc),
            vec![
                "volume".into(),
                v.namespace.clone(),
                v.pvc.clone(),
                format!(
                    "{} · {} files · {} · {} · enter: files",
                    v.storage_class.as_deref().unwrap_or("-"),
                    v.files,
                    format::bytes(v.bytes),
                    v.consistency
                ),
            ],
        ));
    }
    for w in &meta.warnings {
        out.push(
            Row::new(
                format!("warn:{w}"),
                vec!["warning".into(), "".into(), "".into(), w.clone()],
            )
            .tone(Tone::Warn),
        );
    }
    match app.snapshot_objects.get(id) {
        Some(Load::Ready(objects)) => {
            let mut by: BTreeMap<String, Vec<Row>> = BTreeMap::new();
            for o in objects {
                let r = ObjRef::of(o);
                by.entry(r.type_name()).or_default().push(Row::new(
                    object_key(o),
                    vec![
                        r.type_name(),
                        r.namespace.clone().unwrap_or_else(|| "-".into()),
                        r.name.clone(),
                        String::new(),
                    ],
                ));
            }
            for (_, rows) in by {
                out.extend(rows);
            }
        }
        Some(Load::Failed(e)) => out.push(
            Row::new(
                "err",
                vec!["error".into(), "".into(), "".into(), e.to_string()],
            )
            .tone(Tone::Error),
        ),
        _ => out.push(
            Row::new(
                "loading",
                vec!["objects".into(), "".into(), "loading…".into(), "".into()],
            )
            .tone(Tone::Dim),
        ),
    }
    out
}

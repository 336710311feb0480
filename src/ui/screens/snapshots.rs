//! Snapshots of the repository, and one snapshot's volumes (each opens as a file tree,
//! see `files.rs`) and objects.

use std::collections::BTreeMap;

use crate::app::{App, Load, Row, Tone};
use crate::format;
use crate::screens::workloads::object_key;
use ferry_k8s::capture::CaptureMeta;
use ferry_k8s::objects::ObjRef;
use ferry_repo::snapshot::Snapshot;

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
            Row::new("err", vec!["error".into(), "".into(), "".into(), e.clone()])
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

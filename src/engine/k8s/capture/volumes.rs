//! A capture's volume data: a CSI snapshot of each claim (and a claim made from it) when
//! the class allows, else the live claim; a mover pod lists and reads it through the
//! exec stream ([`read_with_mover`]), and only files changed since the parent snapshot
//! travel ([`unchanged`]).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt as _;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::VolumeRecord;
use super::writer::{Cmd, Writer};
use crate::lease::JobLease;
use crate::mover::{Listed, Mover, MoverOptions};
use crate::objects::ObjRef;
use crate::{JobProgress, K8sError, Result, VOLUMES_DIR};
use ferry_repo::ingest;
use ferry_repo::snapshot::Snapshot;
use ferry_repo::tree::{Node, NodeKind};
use ferry_repo::{self as eng, Repository};

/// The files of one volume in a parent snapshot, by path.
pub(super) async fn parent_volume(
    repo: &Repository,
    parent: &Snapshot,
    ns: &str,
    pvc: &str,
) -> Result<HashMap<Vec<u8>, Node>> {
    let repo = repo.clone();
    let root = parent.tree;
    let path = format!("{VOLUMES_DIR}/{ns}/{pvc}");
    tokio::task::spawn_blocking(move || -> eng::Result<HashMap<Vec<u8>, Node>> {
        let mut m = HashMap::new();
        let Some(top) = ferry_repo::tree::find_path(&repo, &root, &path)? else {
            return Ok(m);
        };
        let Some(sub) = top.subtree else { return Ok(m) };
        ferry_repo::tree::walk(&repo, &sub, std::path::Path::new(""), &mut |p, n| {
            m.insert(p.as_os_str().as_bytes().to_vec(), n.clone());
            Ok(true)
        })?;
        Ok(m)
    })
    .await
    .map_err(|e| K8sError::Invalid(e.to_string()))?
    .map_err(K8sError::from)
}

/// The tree of one volume in a parent snapshot, if it has one.
pub(super) async fn parent_tree(
    repo: &Repository,
    parent: &Snapshot,
    ns: &str,
    pvc: &str,
) -> Result<Option<ferry_repo::Id>> {
    let repo = repo.clone();
    let root = parent.tree;
    let path = format!("{VOLUMES_DIR}/{ns}/{pvc}");
    tokio::task::spawn_blocking(move || ferry_repo::tree::find_path(&repo, &root, &path))
        .await
        .map_err(|e| K8sError::Invalid(e.to_string()))?
        .map(|n| n.and_then(|n| n.subtree))
        .map_err(K8sError::from)
}

/// Makes a CSI snapshot of the claim and a claim restored from it; returns the
/// temporary claim's name and the snapshot's, to delete afterwards.
pub(super) async fn snapshot_claim(
    client: &kube::Client,
    pvc: &Value,
    class: &str,
    lease: &JobLease,
    progress: &JobProgress,
) -> Result<(String, String)> {
    let r = ObjRef::of(pvc);
    let ns = r.namespace.clone().unwrap_or_default();
    lease.hold(&ns).await?;
    let catalog_res = crate::lease::snapshot_resource();
    let snaps: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client.clone(), &ns, &catalog_res);
    let suffix = &uuid_suffix();
    let snap_name = format!("ferry-{}-{suffix}", truncate(&r.name, 40));
    let obj: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": snap_name, "namespace": ns, "labels": lease.labels("snapshot")},
        "spec": {"volumeSnapshotClassName": class, "source": {"persistentVolumeClaimName": r.name}}
    }))
    .map_err(|e| K8sError::Invalid(e.to_string()))?;
    snaps
        .create(&Default::default(), &obj)
        .await
        .map_err(|e| K8sError::api(format!("cannot snapshot {r}"), &e))?;
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let s = snaps
            .get(&snap_name)
            .await
            .map_err(|e| K8sError::api(format!("snapshot of {r}"), &e))?;
        let v = serde_json::to_value(&s).unwrap_or(Value::Null);
        if v["status"]["readyToUse"].as_bool() == Some(true) {
            break;
        }
        if let Some(msg) = v["status"]["error"]["message"].as_str() {
            let _ = snaps.delete(&snap_name, &Default::default()).await;
            return Err(K8sError::Volume {
                pvc: r.to_string(),
                detail: format!("the CSI snapshot failed: {msg}"),
            });
        }
        if Instant::now() > deadline {
            let _ = snaps.delete(&snap_name, &Default::default()).await;
            return Err(K8sError::Volume {
                pvc: r.to_string(),
                detail: "the CSI snapshot was not ready within 5 minutes".into(),
            });
        }
        if let Err(cancelled) = progress.check() {
            let _ = snaps.delete(&snap_name, &Default::default()).await;
            return Err(cancelled);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(client.clone(), &ns);
    let tmp_name = format!("ferry-read-{}-{suffix}", truncate(&r.name, 40));
    let mut spec = pvc["spec"].clone();
    if let Some(m) = spec.as_object_mut() {
        m.remove("volumeName");
        m.remove("dataSourceRef");
        m.insert(
            "dataSource".into(),
            json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snap_name}),
        );
        m.insert("accessModes".into(), json!(["ReadWriteOnce"]));
    }
    let claim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": tmp_name, "namespace": ns, "labels": lease.labels("snapshot-claim")},
        "spec": spec,
    }))
    .map_err(|e| K8sError::Invalid(e.to_string()))?;
    if let Err(e) = claims.create(&Default::default(), &claim).await {
        let _ = snaps.delete(&snap_name, &Default::default()).await;
        return Err(K8sError::api(
            format!("cannot restore the snapshot of {r}"),
            &e,
        ));
    }
    Ok((tmp_name, snap_name))
}

pub(super) async fn delete_snapshot_claim(
    client: &kube::Client,
    ns: &str,
    claim: &str,
    snap: &str,
) {
    let claims: kube::Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        kube::Api::namespaced(client.clone(), ns);
    let _ = claims.delete(claim, &Default::default()).await;
    let res = crate::lease::snapshot_resource();
    let snaps: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client.clone(), ns, &res);
    let _ = snaps.delete(snap, &Default::default()).await;
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end_matches('-')
}

fn uuid_suffix() -> String {
    let mut b = [0u8; 3];
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

/// What a capture records of the claim `pvc` before its data is read.
pub(super) fn record_of(pvc: &Value) -> VolumeRecord {
    let r = ObjRef::of(pvc);
    VolumeRecord {
        namespace: r.namespace.clone().unwrap_or_default(),
        pvc: r.name.clone(),
        storage_class: pvc["spec"]["storageClassName"].as_str().map(str::to_string),
        capacity: pvc["status"]["capacity"]["storage"]
            .as_str()
            .or(pvc["spec"]["resources"]["requests"]["storage"].as_str())
            .map(str::to_string),
        access_modes: pvc["spec"]["accessModes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        driver: None,
        consistency: "live".into(),
        files: 0,
        bytes: 0,
        files_transferred: 0,
    }
}

/// Reads one claim into the snapshot at `volumes/<ns>/<pvc>`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn capture_volume(
    client: &kube::Client,
    writer: &Writer,
    pvc: &Value,
    snapshot_class: Option<String>,
    parent: &HashMap<Vec<u8>, Node>,
    mover_opts: &MoverOptions,
    lease: &JobLease,
    progress: &Arc<JobProgress>,
    warnings: &mut Vec<String>,
) -> Result<VolumeRecord> {
    let r = ObjRef::of(pvc);
    let ns = r.namespace.clone().unwrap_or_default();
    let mut rec = record_of(pvc);
    progress.volume(&ns, &r.name, |s| s.state = "starting mover".into());

    // A CSI snapshot when the driver has a class, else the live claim (on the node that
    // holds it when it is ReadWriteOnce).
    let mut temp: Option<(String, String)> = None;
    if let Some(class) = &snapshot_class {
        progress.volume(&ns, &r.name, |s| s.state = "snapshotting".into());
        match snapshot_claim(client, pvc, class, lease, progress).await {
            Ok(t) => {
                rec.consistency = "snapshot".into();
                temp = Some(t);
            }
            Err(e) if e.is_cancelled() => return Err(K8sError::Cancelled),
            Err(e) => warnings.push(format!("{r}: {e}; reading the live volume instead")),
        }
    }
    // The pods using the claim: the node of a ReadWriteOnce claim, and the user a mover
    // takes where Pod Security refuses root.
    let holders = crate::mover::holders(client, &ns, &r.name).await;
    let (claim, node) = match &temp {
        Some((c, _)) => (c.clone(), None),
        None => {
            let rwo = rec
                .access_modes
                .iter()
                .any(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod");
            (r.name.clone(), holders.node.clone().filter(|_| rwo))
        }
    };
    if rec.consistency == "live" {
        progress.log(format!("{r}: reading the live volume (no CSI snapshot class for its driver): files changing during the read may be inconsistent"));
    }
    let result = async {
        let mover = Mover::start(
            client,
            &ns,
            &claim,
            true,
            node.as_deref(),
            holders.user.as_ref(),
            &holders.placement.tolerating(&mover_opts.tolerations),
            mover_opts,
            lease,
        )
        .await?;
        if let Some(u) = &mover.user {
            progress.log(format!(
                "{r}: Pod Security refuses a root mover here: reading as the workload's user {}, so files that user cannot read fail the volume",
                u.uid
            ));
        }
        let through_snapshot = temp.is_some();
        let r2 = read_with_mover(
            &mover,
            writer,
            &ns,
            &r.name,
            parent,
            through_snapshot,
            progress,
            &mut rec,
        )
        .await;
        mover.delete().await;
        r2
    }
    .await;
    if let Some((c, s)) = &temp {
        delete_snapshot_claim(client, &ns, c, s).await;
    }
    result?;
    progress.volume(&ns, &r.name, |s| {
        s.state = "done".into();
        s.files = rec.files;
        s.bytes = rec.bytes;
        s.streaming_from = None;
    });
    Ok(rec)
}

#[allow(clippy::too_many_arguments)]
async fn read_with_mover(
    mover: &Mover,
    writer: &Writer,
    ns: &str,
    pvc: &str,
    parent: &HashMap<Vec<u8>, Node>,
    through_snapshot: bool,
    progress: &Arc<JobProgress>,
    rec: &mut VolumeRecord,
) -> Result<()> {
    progress.volume(ns, pvc, |s| s.state = "listing".into());
    let prefix = format!("{VOLUMES_DIR}/{ns}/{pvc}").into_bytes();
    let join = |p: &[u8]| {
        let mut v = prefix.clone();
        v.push(b'/');
        v.extend_from_slice(p);
        v
    };
    // The volume's root folder exists even when empty.
    writer.send(Cmd::Node {
        path: prefix.clone(),
        node: ingest::dir_node(b""),
    })?;
    let entries = mover.list().await?;
    let (mut files, mut bytes) = (0u64, 0u64);
    for e in &entries {
        if e.is_file() {
            files += 1;
            bytes += e.size;
        }
    }
    progress.data.add_total(files, bytes);
    progress.volume(ns, pvc, |s| {
        s.files_total = files;
        s.bytes_total = bytes;
    });
    // A claim read through a CSI snapshot is a new volume each time. Block-level
    // snapshots (EBS, Azure Disk, RBD) keep inodes and change times, so everything is
    // compared; snapshots made by copying files give every file a new inode and change
    // time, which then tell nothing: such a volume is compared by type, size and
    // modification time to the nanosecond.
    let strict = !through_snapshot || identity_kept(parent, &entries);
    if !strict {
        progress.log(format!(
            "{ns}/{pvc}: its snapshots do not keep inodes (the driver copies files): files are compared by size and modification time to the nanosecond"
        ));
    }
    let mut fetch: HashMap<Vec<u8>, Listed> = HashMap::new();
    for e in entries {
        rec.files += u64::from(e.is_file());
        rec.bytes += if e.is_file() { e.size } else { 0 };
        if e.is_dir() {
            let mut node = ingest::dir_node(b"");
            set_meta(&mut node, &e);
            writer.send(Cmd::Node {
                path: join(&e.path),
                node,
            })?;
        } else if let Some(kind) = e.special_kind() {
            // Nothing to read: FIFOs and sockets are recorded from the listing (a FIFO
            // would block whoever opened it). Device nodes are left out: the listing
            // does not give their numbers, and a pod could not create them.
            if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
                progress.log(format!(
                    "{ns}/{pvc}: {} is a device node: left out of the capture",
                    show(&e.path)
                ));
                continue;
            }
            let mut node = Node {
                kind,
                ..ferry_repo::tree::dir_node(b"")
            };
            set_meta(&mut node, &e);
            writer.send(Cmd::Node {
                path: join(&e.path),
                node,
            })?;
        } else if let Some(p) = parent.get(&e.path).filter(|p| unchanged(p, &e, strict)) {
            let mut node = p.clone();
            set_meta(&mut node, &e);
            writer.send(Cmd::Node {
                path: join(&e.path),
                node,
            })?;
        } else {
            fetch.insert(e.path.clone(), e);
        }
    }
    if fetch.is_empty() {
        return Ok(());
    }
    progress.volume(ns, pvc, |s| s.state = "reading".into());
    // What is not fetched was taken from the parent: done already.
    let (fetch_files, fetch_bytes) = fetch
        .values()
        .filter(|e| e.is_file())
        .fold((0u64, 0u64), |(f, b), e| (f + 1, b + e.size));
    progress.volume_streaming(
        ns,
        pvc,
        rec.files.saturating_sub(fetch_files),
        rec.bytes.saturating_sub(fetch_bytes),
    );
    let mut names: Vec<Vec<u8>> = fetch.keys().cloned().collect();
    names.sort();
    let script = crate::listing::fetch_script(&names);
    let asked = names.len() as u64;
    let cmd = crate::listing::fetch_command(mover.mount);
    let what = format!("tar -c of {asked} file(s) in {}", mover.mount);
    let mut p = mover.exec(cmd, true).await?;
    let stdout = p
        .stdout()
        .ok_or_else(|| K8sError::Invalid("the mover gave no output stream".into()))?;
    let mut stderr = p.stderr();
    let (reply, answer) = tokio::sync::oneshot::channel();
    let (chunks, reader) = crate::pipe::reader();
    writer.send(Cmd::Tar {
        prefix: prefix.clone(),
        reader: Box::new(reader),
        expect: fetch,
        reply,
    })?;
    // The script goes in while the archive comes out: a long one must not wait for
    // output nobody reads yet.
    let mut stdin = p.stdin();
    let feed = async {
        if let Some(w) = stdin.as_mut() {
            w.write_all(&script).await?;
            w.shutdown().await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let mut err = Vec::new();
    let read_err = async {
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err).await;
        }
    };
    let streamed = crate::streaming(mover.stall, &progress.data, async {
        let (fed, (), (), answer) = tokio::join!(
            feed,
            crate::pipe::pump_out(stdout, chunks),
            read_err,
            answer
        );
        (fed, answer)
    })
    .await;
    // Otherwise the pump is gone, so the snapshot writer sees the end of the stream
    // (and drains nothing more), and the mover's `tar` is stopped.
    let (fed, tar_result) = streamed.or_stop(&mut p, || mover.stalled(&what))?;
    let volume_err = |detail: String| K8sError::Volume {
        pvc: format!("{ns}/{pvc}"),
        detail,
    };
    fed.map_err(|e| volume_err(format!("cannot send the file list to the mover: {e}")))?;
    let arrived = tar_result
        .map_err(|_| K8sError::Invalid("the snapshot writer stopped early".into()))?
        .map_err(|e| volume_err(e.to_string()))?;
    for w in arrived.warnings {
        progress.log(format!("{ns}/{pvc}: {w}"));
    }
    for (path, listed, read) in &arrived.resized {
        progress.log(format!(
            "{ns}/{pvc}: {} changed while being read ({listed} bytes when listed, {read} read): it is stored as read",
            show(path)
        ));
    }
    mover.finish(p, &what, &err).await?;
    if !arrived.unexpected.is_empty() {
        return Err(volume_err(format!(
            "the mover's archive held {} file(s) that were not asked for ({}); none of them was kept: check the mover image's `tar`",
            arrived.unexpected.len(),
            some(&arrived.unexpected)
        )));
    }
    if !arrived.missing.is_empty() {
        return Err(volume_err(format!(
            "{} of {asked} file(s) did not arrive ({}): the volume is not complete in the snapshot; run the capture again (a CSI snapshot class for the claim's driver gives a stable copy to read)",
            arrived.missing.len(),
            some(&arrived.missing)
        )));
    }
    rec.files_transferred = asked;
    Ok(())
}

/// A file is unchanged since the parent when everything a local backup compares is
/// the same: type, size, modification time (to the nanosecond the mover gives), and,
/// when `strict`, change time and inode.
fn unchanged(parent: &Node, now: &Listed, strict: bool) -> bool {
    now.is_file()
        && parent.kind == NodeKind::File
        && parent.size == now.size
        && parent.mtime_ns == now.mtime_ns
        && (!strict || (parent.ctime_ns == now.ctime_ns && parent.inode == now.inode))
}

/// Whether the files that look unchanged since the parent (same size and modification
/// time) kept their inodes and change times: false when none of them did (a copy has
/// new change times; its inodes may even repeat old ones by chance).
fn identity_kept(parent: &HashMap<Vec<u8>, Node>, entries: &[Listed]) -> bool {
    let (mut same, mut moved) = (0u64, 0u64);
    for e in entries.iter().filter(|e| e.is_file()) {
        if let Some(p) = parent.get(&e.path)
            && p.kind == NodeKind::File
            && p.size == e.size
            && p.mtime_ns == e.mtime_ns
        {
            if p.inode == e.inode && p.ctime_ns == e.ctime_ns {
                same += 1;
            } else {
                moved += 1;
            }
        }
    }
    same > 0 || moved == 0
}

fn show(path: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(path))
}

/// A few paths, for a message.
fn some(paths: &[Vec<u8>]) -> String {
    let mut s: Vec<String> = paths.iter().take(5).map(|p| show(p)).collect();
    if paths.len() > 5 {
        s.push(format!("and {} more", paths.len() - 5));
    }
    s.join(", ")
}

pub(super) fn set_meta(node: &mut Node, e: &Listed) {
    node.mode = e.mode & 0o7777;
    node.uid = e.uid;
    node.gid = e.gid;
    node.mtime_ns = e.mtime_ns;
    node.ctime_ns = e.ctime_ns;
    node.inode = e.inode;
    node.links = e.links;
    node.sparse = e.is_sparse();
}

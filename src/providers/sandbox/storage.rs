//! Storage in a sandbox: the StorageClasses and VolumeSnapshotClasses a cluster is given,
//! and a CSI-like provisioner that keeps each volume's contents in a folder,
//! `<sandbox>/volumes/<volumeHandle>/` ([`Cluster::volume_dir`]).
//!
//! - Provisioning: a claim whose class binds `Immediate` gets a PersistentVolume
//!   `pvc-<claim uid>` at once; with `WaitForFirstConsumer` once the scheduler has put the
//!   `volume.kubernetes.io/selected-node` annotation on it (the PV then has node affinity
//!   to that node's zone). The PV says `csi: {driver: <provisioner>, volumeHandle: <pv
//!   name>}`, carries the request as capacity, the claim in `claimRef` and the class's
//!   reclaim policy. A class that does not exist leaves the claim Pending with a
//!   `ProvisioningFailed` event.
//! - Static binding: a claim naming a PV in `volumeName`, or a PV whose `claimRef` names
//!   the claim, bind without provisioning.
//! - Reclaim: when its claim goes, a `Delete` PV goes too, with its folder; a `Retain` PV
//!   becomes Released.
//! - Expansion: a bigger request on a class with `allowVolumeExpansion` grows the PV.
//! - Snapshots: a VolumeSnapshot of a bound claim gets a VolumeSnapshotContent
//!   `snapcontent-<snapshot uid>` whose handle's folder is a copy of the volume's, and is
//!   ready once the copy is done; a claim with a VolumeSnapshot (or another claim) as
//!   `dataSource` is provisioned with a copy of its contents. Copies run outside the
//!   cluster lock (see `controllers.rs`) into a hidden folder renamed when complete, so an
//!   existing folder always holds a whole copy.
//!
//! Owns PVC and PV binding, volume folders and snapshot contents. Must not schedule pods.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::changes::Scope;
use super::controllers::{
    create, delete, deleting, event, get, in_scope, info, list, log_err, name_of, ns_of,
    set_status, uid_of, update,
};
use super::verbs::{ApiResult, Cluster, now};

/// The provisioner of the sandbox's generic `standard` class.
pub const HOSTPATH_PROVISIONER: &str = "sandbox.ferry.dev/hostpath";
/// The provisioner AWS clusters use, which the demo classes mimic.
pub const EBS_PROVISIONER: &str = "ebs.csi.aws.com";

/// When a claim of a class is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeBindingMode {
    Immediate,
    WaitForFirstConsumer,
}

/// What happens to a volume when its claim is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReclaimPolicy {
    Delete,
    Retain,
}

impl ReclaimPolicy {
    fn as_str(self) -> &'static str {
        match self {
            ReclaimPolicy::Delete => "Delete",
            ReclaimPolicy::Retain => "Retain",
        }
    }
}

/// A StorageClass a sandbox cluster is created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageClassSpec {
    pub name: String,
    pub provisioner: String,
    pub parameters: BTreeMap<String, String>,
    pub binding_mode: VolumeBindingMode,
    pub reclaim_policy: ReclaimPolicy,
    pub allow_volume_expansion: bool,
    /// Marked with `storageclass.kubernetes.io/is-default-class: "true"`.
    pub default: bool,
}

impl StorageClassSpec {
    /// The sandbox's generic class: `standard`, default, WaitForFirstConsumer.
    pub fn standard() -> StorageClassSpec {
        StorageClassSpec {
            name: "standard".into(),
            provisioner: HOSTPATH_PROVISIONER.into(),
            parameters: BTreeMap::new(),
            binding_mode: VolumeBindingMode::WaitForFirstConsumer,
            reclaim_policy: ReclaimPolicy::Delete,
            allow_volume_expansion: true,
            default: true,
        }
    }

    /// An `ebs.csi.aws.com` class with `parameters.type` = `volume_type`.
    pub fn ebs(name: &str, volume_type: &str, binding_mode: VolumeBindingMode) -> StorageClassSpec {
        StorageClassSpec {
            name: name.into(),
            provisioner: EBS_PROVISIONER.into(),
            parameters: BTreeMap::from([("type".to_string(), volume_type.to_string())]),
            binding_mode,
            reclaim_policy: ReclaimPolicy::Delete,
            allow_volume_expansion: true,
            default: false,
        }
    }

    fn to_object(&self) -> Value {
        let mut sc = json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": self.name},
            "provisioner": self.provisioner,
            "reclaimPolicy": self.reclaim_policy.as_str(),
            "volumeBindingMode": match self.binding_mode {
                VolumeBindingMode::Immediate => "Immediate",
                VolumeBindingMode::WaitForFirstConsumer => "WaitForFirstConsumer",
            },
            "allowVolumeExpansion": self.allow_volume_expansion,
        });
        if !self.parameters.is_empty() {
            sc["parameters"] = json!(self.parameters);
        }
        if self.default {
            sc["metadata"]["annotations"] =
                json!({"storageclass.kubernetes.io/is-default-class": "true"});
        }
        sc
    }
}

/// A VolumeSnapshotClass a sandbox cluster is created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotClassSpec {
    pub name: String,
    pub driver: String,
    pub deletion_policy: ReclaimPolicy,
    /// Marked with `snapshot.storage.kubernetes.io/is-default-class: "true"`.
    pub default: bool,
}

impl SnapshotClassSpec {
    fn to_object(&self) -> Value {
        let mut c = json!({
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": self.name},
            "driver": self.driver,
            "deletionPolicy": self.deletion_policy.as_str(),
        });
        if self.default {
            c["metadata"]["annotations"] =
                json!({"snapshot.storage.kubernetes.io/is-default-class": "true"});
        }
        c
    }
}

/// The classes `ferry sandbox up` gives a cluster, mimicking two clouds: `prod` has
/// `ebs-sc` (gp3, WaitForFirstConsumer) and the `csi-aws-vsc` snapshot class, `qa` has
/// `gp2` (default) and `gp3` (both Immediate, like the in-tree era classes), any other
/// name the generic `standard`.
pub fn demo_classes(cluster: &str) -> (Vec<StorageClassSpec>, Vec<SnapshotClassSpec>) {
    match cluster {
        "prod" => {
            let mut ebs =
                StorageClassSpec::ebs("ebs-sc", "gp3", VolumeBindingMode::WaitForFirstConsumer);
            ebs.default = true;
            let vsc = SnapshotClassSpec {
                name: "csi-aws-vsc".into(),
                driver: EBS_PROVISIONER.into(),
                deletion_policy: ReclaimPolicy::Delete,
                default: true,
            };
            (vec![ebs], vec![vsc])
        }
        "qa" => {
            let mut gp2 = StorageClassSpec::ebs("gp2", "gp2", VolumeBindingMode::Immediate);
            gp2.default = true;
            let gp3 = StorageClassSpec::ebs("gp3", "gp3", VolumeBindingMode::Immediate);
            (vec![gp2, gp3], vec![])
        }
        _ => (vec![StorageClassSpec::standard()], vec![]),
    }
}

/// Creates the classes that do not exist yet (existing ones are left as they are).
pub fn install(
    c: &mut Cluster,
    classes: &[StorageClassSpec],
    snapshot_classes: &[SnapshotClassSpec],
) -> ApiResult<()> {
    for sc in classes {
        if get(c, "storage.k8s.io", "storageclasses", None, &sc.name).is_none() {
            create(c, "storage.k8s.io", "storageclasses", None, sc.to_object())?;
        }
    }
    for vsc in snapshot_classes {
        if get(
            c,
            "snapshot.storage.k8s.io",
            "volumesnapshotclasses",
            None,
            &vsc.name,
        )
        .is_none()
        {
            create(
                c,
                "snapshot.storage.k8s.io",
                "volumesnapshotclasses",
                None,
                vsc.to_object(),
            )?;
        }
    }
    Ok(())
}

/// A volume copy the controllers want done outside the lock.
#[derive(Debug, Clone)]
pub struct Copy {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// Copies the folder `from` to `to` through a hidden sibling renamed at the end, keeping
/// what a block-level snapshot keeps: modes, owners, times (symbolic links' own too),
/// hard links and the holes of sparse files.
pub fn copy_volume(from: &Path, to: &Path) -> std::io::Result<()> {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = to.with_file_name(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    copy_tree(from, &tmp, &mut std::collections::HashMap::new())?;
    std::fs::rename(&tmp, to)
}

/// Copies `from` into `to`; `links` holds the copy of each file with more than one
/// link, by device and inode.
fn copy_tree(
    from: &Path,
    to: &Path,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&src)?;
        let mtime = filetime::FileTime::from_last_modification_time(&meta);
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            keep_owner(&dst, &meta);
            filetime::set_symlink_file_times(&dst, mtime, mtime)?;
            continue;
        }
        if meta.is_dir() {
            copy_tree(&src, &dst, links)?;
        } else if meta.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    std::fs::hard_link(first, &dst)?;
                    continue;
                }
                links.insert(key, dst.clone());
            }
            if meta.blocks().saturating_mul(512) < meta.size() {
                copy_sparse(&src, &dst, meta.size())?;
            } else {
                std::fs::copy(&src, &dst)?;
            }
        } else {
            // FIFOs, sockets and device nodes are made anew, never opened (opening a
            // FIFO waits for a writer).
            use nix::sys::stat::{Mode, SFlag, mknod};
            mknod(
                &dst,
                SFlag::from_bits_truncate(meta.mode() & SFlag::S_IFMT.bits()),
                Mode::from_bits_truncate(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(std::io::Error::from)?;
            keep_owner(&dst, &meta);
            // mknod set the mode; setting times would open the file (filetime does).
            continue;
        }
        keep_owner(&dst, &meta);
        std::fs::set_permissions(&dst, meta.permissions())?;
        filetime::set_file_mtime(&dst, mtime)?;
    }
    Ok(())
}

/// Gives `dst` the owner of `meta`, where the sandbox may (it runs as root).
fn keep_owner(dst: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt as _;
    let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
}

/// Copies a sparse file leaving its all-zero 4 KiB blocks as holes.
fn copy_sparse(src: &Path, dst: &Path, size: u64) -> std::io::Result<()> {
    use std::io::Read as _;
    use std::os::unix::fs::FileExt as _;
    let mut r = std::fs::File::open(src)?;
    let w = std::fs::File::create(dst)?;
    let mut block = vec![0u8; 4096];
    let mut at = 0u64;
    loop {
        let mut n = 0;
        while n < block.len() {
            match r.read(&mut block[n..])? {
                0 => break,
                got => n += got,
            }
        }
        if n == 0 {
            break;
        }
        if block[..n].iter().any(|b| *b != 0) {
            w.write_all_at(&block[..n], at)?;
        }
        at += n as u64;
    }
    w.set_len(size.max(at))
}

/// Bytes in a Kubernetes quantity such as `10Gi`, `500M` or `1048576`.
pub fn parse_quantity(q: &str) -> Option<u128> {
    let q = q.trim();
    let split = q
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        _ => return None,
    };
    Some((n * mult).ceil() as u128)
}

fn request(pvc: &Value) -> Option<&str> {
    pvc["spec"]["resources"]["requests"]["storage"].as_str()
}

/// The class marked default, if any.
pub fn default_class(c: &Cluster) -> Option<Value> {
    c.store
        .list("storage.k8s.io", "storageclasses", None)
        .map(|(_, sc)| sc)
        .find(|sc| {
            sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        })
        .cloned()
}

fn set_pending(c: &mut Cluster, pvc: &Value) -> ApiResult<()> {
    set_status(
        c,
        "",
        "persistentvolumeclaims",
        pvc,
        json!({"phase": "Pending"}),
    )
    .map(|_| ())
}

/// PersistentVolumeClaims within `scope`: bind, provision, expand. Returns whether it
/// failed on one.
pub fn claims(c: &mut Cluster, scope: &Scope, copies: &mut Vec<Copy>) -> bool {
    let mut failed = false;
    for pvc in in_scope(c, scope, "", "persistentvolumeclaims", |pvc| !deleting(pvc)) {
        let r = if pvc["status"]["phase"] == "Bound" {
            expand(c, &pvc)
        } else {
            bind_claim(c, &pvc, copies)
        };
        failed |= log_err(&format!("claim {}", name_of(&pvc)), r);
    }
    failed
}

fn claim_ref_matches(pv: &Value, pvc: &Value) -> bool {
    let r = &pv["spec"]["claimRef"];
    r["name"] == pvc["metadata"]["name"]
        && r["namespace"] == pvc["metadata"]["namespace"]
        && r["uid"]
            .as_str()
            .is_none_or(|u| u.is_empty() || u == uid_of(pvc))
}

fn bind_claim(c: &mut Cluster, pvc: &Value, copies: &mut Vec<Copy>) -> ApiResult<()> {
    let ns = ns_of(pvc).unwrap_or("default").to_string();
    // Static binding: the claim names its volume, or a volume names its claim.
    if let Some(pv_name) = pvc["spec"]["volumeName"].as_str().filter(|s| !s.is_empty()) {
        return match get(c, "", "persistentvolumes", None, pv_name) {
            Some(pv) if pv["spec"]["claimRef"].is_null() || claim_ref_matches(&pv, pvc) => {
                bind(c, pvc, &pv, None)
            }
            _ => set_pending(c, pvc),
        };
    }
    let prebound = c
        .store
        .list("", "persistentvolumes", None)
        .map(|(_, pv)| pv)
        .find(|pv| claim_ref_matches(pv, pvc) && pv["status"]["phase"] != "Released")
        .cloned();
    if let Some(pv) = prebound {
        return bind(c, pvc, &pv, None);
    }
    // Dynamic provisioning.
    let class = match claim_class(pvc) {
        Some("") => return set_pending(c, pvc),
        Some(name) => match get(c, "storage.k8s.io", "storageclasses", None, name) {
            Some(sc) => sc,
            None => {
                event(
                    c,
                    pvc,
                    "Warning",
                    "ProvisioningFailed",
                    &format!("storageclass.storage.k8s.io \"{name}\" not found"),
                );
                return set_pending(c, pvc);
            }
        },
        None => match default_class(c) {
            Some(sc) => {
                // What the DefaultStorageClass admission plugin would have done.
                let mut named = pvc.clone();
                named["spec"]["storageClassName"] = sc["metadata"]["name"].clone();
                update(c, "", "persistentvolumeclaims", named)?;
                return Ok(());
            }
            None => {
                event(
                    c,
                    pvc,
                    "Normal",
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set",
                );
                return set_pending(c, pvc);
            }
        },
    };
    let selected = pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
        .as_str()
        .map(str::to_string);
    if class["volumeBindingMode"] == "WaitForFirstConsumer" && selected.is_none() {
        event(
            c,
            pvc,
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding",
        );
        return set_pending(c, pvc);
    }
    let pv_name = format!("pvc-{}", uid_of(pvc));
    let dir = c.volume_dir(&pv_name);
    // Contents from a data source are copied first; the PV appears once they are whole.
    let source = &pvc["spec"]["dataSource"];
    if source.is_object() {
        let kind = source["kind"].as_str().unwrap_or("");
        let src_name = source["name"].as_str().unwrap_or("");
        let from = match kind {
            "VolumeSnapshot" => {
                let snap = get(
                    c,
                    "snapshot.storage.k8s.io",
                    "volumesnapshots",
                    Some(&ns),
                    src_name,
                );
                let content = snap.as_ref().and_then(|s| {
                    s["status"]["readyToUse"]
                        .as_bool()
                        .filter(|r| *r)
                        .and_then(|_| s["status"]["boundVolumeSnapshotContentName"].as_str())
                        .and_then(|n| {
                            get(
                                c,
                                "snapshot.storage.k8s.io",
                                "volumesnapshotcontents",
                                None,
                                n,
                            )
                        })
                });
                content.and_then(|ct| {
                    ct["status"]["snapshotHandle"]
                        .as_str()
                        .map(|h| c.volume_dir(h))
                })
            }
            "PersistentVolumeClaim" => get(c, "", "persistentvolumeclaims", Some(&ns), src_name)
                .filter(|src| src["status"]["phase"] == "Bound")
                .and_then(|src| {
                    src["spec"]["volumeName"]
                        .as_str()
                        .and_then(|v| get(c, "", "persistentvolumes", None, v))
                })
                .and_then(|pv| {
                    pv["spec"]["csi"]["volumeHandle"]
                        .as_str()
                        .map(|h| c.volume_dir(h))
                }),
            _ => None,
        };
        let Some(from) = from.filter(|f| f.is_dir()) else {
            event(
                c,
                pvc,
                "Warning",
                "ProvisioningFailed",
                &format!(
                    "failed to provision volume: data source {kind} \"{src_name}\" is not ready or does not exist"
                ),
            );
            return set_pending(c, pvc);
        };
        if !dir.is_dir() {
            event(
                c,
                pvc,
                "Normal",
                "Provisioning",
                &format!(
                    "External provisioner is provisioning volume for claim \"{ns}/{}\"",
                    name_of(pvc)
                ),
            );
            copies.push(Copy { from, to: dir });
            return set_pending(c, pvc);
        }
    } else if let Err(e) = std::fs::create_dir_all(&dir) {
        event(
            c,
            pvc,
            "Warning",
            "ProvisioningFailed",
            &format!(
                "failed to provision volume: cannot create {}: {e}",
                dir.display()
            ),
        );
        return set_pending(c, pvc);
    }
    let provisioner = class["provisioner"]
        .as_str()
        .unwrap_or(HOSTPATH_PROVISIONER)
        .to_string();
    let size = request(pvc).unwrap_or("1Gi").to_string();
    let mut pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "annotations": {
            "pv.kubernetes.io/provisioned-by": provisioner,
            "volume.kubernetes.io/provisioner-deletion-secret-name": "",
            "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
        }},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": pvc["spec"]["accessModes"].as_array().cloned().unwrap_or_else(|| vec![json!("ReadWriteOnce")]),
            "persistentVolumeReclaimPolicy": class["reclaimPolicy"].as_str().unwrap_or("Delete"),
            "storageClassName": class["metadata"]["name"],
            "volumeMode": pvc["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
            "csi": {"driver": provisioner, "volumeHandle": pv_name, "fsType": "ext4",
                    "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": format!("ferry-sandbox-{provisioner}")}},
        },
    });
    if let Some(node) = selected.and_then(|n| get(c, "", "nodes", None, &n)) {
        let labels = &node["metadata"]["labels"];
        let (key, value) = match labels["topology.kubernetes.io/zone"].as_str() {
            Some(zone) => ("topology.kubernetes.io/zone", zone.to_string()),
            None => ("kubernetes.io/hostname", name_of(&node).to_string()),
        };
        pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}]}});
    }
    let pv = create(c, "", "persistentvolumes", None, pv)?;
    bind(c, pvc, &pv, Some(&provisioner))
}

/// Binds a claim and a volume both ways.
fn bind(c: &mut Cluster, pvc: &Value, pv: &Value, provisioner: Option<&str>) -> ApiResult<()> {
    let mut pv = pv.clone();
    if !claim_ref_matches(&pv, pvc)
        || pv["spec"]["claimRef"]["uid"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        pv["spec"]["claimRef"] = json!({
            "kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": pvc["metadata"]["namespace"], "name": pvc["metadata"]["name"],
            "uid": pvc["metadata"]["uid"], "resourceVersion": pvc["metadata"]["resourceVersion"],
        });
        if let Some(m) = pv["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        pv = update(c, "", "persistentvolumes", pv)?;
    }
    let pv = set_status(
        c,
        "",
        "persistentvolumes",
        &pv,
        json!({"phase": "Bound", "lastPhaseTransitionTime": pv["status"]["lastPhaseTransitionTime"].as_str().map_or_else(now, str::to_string)}),
    )?;
    let mut claim = pvc.clone();
    let by_controller = pvc["spec"]["volumeName"].as_str().is_none_or(str::is_empty);
    claim["spec"]["volumeName"] = pv["metadata"]["name"].clone();
    let ann = &mut claim["metadata"]["annotations"];
    ann["pv.kubernetes.io/bind-completed"] = json!("yes");
    if by_controller {
        ann["pv.kubernetes.io/bound-by-controller"] = json!("yes");
    }
    if let Some(p) = provisioner {
        ann["volume.kubernetes.io/storage-provisioner"] = json!(p);
        ann["volume.beta.kubernetes.io/storage-provisioner"] = json!(p);
    }
    if let Some(m) = claim["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let claim = update(c, "", "persistentvolumeclaims", claim)?;
    let status = json!({
        "phase": "Bound",
        "accessModes": pv["spec"]["accessModes"],
        "capacity": pv["spec"]["capacity"],
    });
    set_status(c, "", "persistentvolumeclaims", &claim, status)?;
    if let Some(p) = provisioner {
        event(
            c,
            &claim,
            "Normal",
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume {} using {p}", name_of(&pv)),
        );
    }
    Ok(())
}

/// The class a claim asks for, as a real cluster reads it: the beta annotation
/// `volume.beta.kubernetes.io/storage-class` first (it still wins on current
/// clusters), then `spec.storageClassName`; `None` when neither is set (the default
/// class then applies).
pub fn claim_class(pvc: &Value) -> Option<&str> {
    pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
        .as_str()
        .or(pvc["spec"]["storageClassName"].as_str())
}

/// Grows a bound claim's volume when its request grew and its class allows it.
fn expand(c: &mut Cluster, pvc: &Value) -> ApiResult<()> {
    let (Some(want), Some(have)) = (request(pvc), pvc["status"]["capacity"]["storage"].as_str())
    else {
        return Ok(());
    };
    if parse_quantity(want) <= parse_quantity(have) {
        return Ok(());
    }
    let allowed = claim_class(pvc)
        .and_then(|n| get(c, "storage.k8s.io", "storageclasses", None, n))
        .is_some_and(|sc| sc["allowVolumeExpansion"].as_bool().unwrap_or(false));
    if !allowed {
        event(
            c,
            pvc,
            "Warning",
            "VolumeResizeFailed",
            "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        );
        return Ok(());
    }
    let want = want.to_string();
    if let Some(mut pv) = pvc["spec"]["volumeName"]
        .as_str()
        .and_then(|n| get(c, "", "persistentvolumes", None, n))
    {
        pv["spec"]["capacity"]["storage"] = json!(want);
        update(c, "", "persistentvolumes", pv)?;
    }
    let mut status = pvc["status"].clone();
    status["capacity"]["storage"] = json!(want);
    set_status(c, "", "persistentvolumeclaims", pvc, status)?;
    event(
        c,
        pvc,
        "Normal",
        "FileSystemResizeSuccessful",
        &format!(
            "MountVolume.NodeExpandVolume succeeded for volume \"{}\"",
            pvc["spec"]["volumeName"].as_str().unwrap_or("")
        ),
    );
    Ok(())
}

/// PersistentVolumes (all of them: they are cluster-scoped): Available, or reclaimed
/// once their claim is gone. Returns whether it failed on one.
pub fn volumes(c: &mut Cluster) -> bool {
    let mut failed = false;
    for pv in list(c, "", "persistentvolumes", None, |pv| !deleting(pv)) {
        failed |= log_err(&format!("volume {}", name_of(&pv)), volume(c, &pv));
    }
    failed
}

fn volume(c: &mut Cluster, pv: &Value) -> ApiResult<()> {
    let r = &pv["spec"]["claimRef"];
    if !r.is_object() {
        return set_status(
            c,
            "",
            "persistentvolumes",
            pv,
            json!({"phase": "Available"}),
        )
        .map(|_| ());
    }
    let claim = get(
        c,
        "",
        "persistentvolumeclaims",
        r["namespace"].as_str(),
        r["name"].as_str().unwrap_or(""),
    );
    let uid = r["uid"].as_str().unwrap_or("");
    let gone = !uid.is_empty() && claim.as_ref().is_none_or(|cl| uid_of(cl) != uid);
    if !gone {
        if pv["status"]["phase"].is_null() {
            return set_status(
                c,
                "",
                "persistentvolumes",
                pv,
                json!({"phase": "Available"}),
            )
            .map(|_| ());
        }
        return Ok(());
    }
    if pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
        let handle = pv["spec"]["csi"]["volumeHandle"]
            .as_str()
            .unwrap_or("")
            .to_string();
        delete(c, "", "persistentvolumes", pv)?;
        if !handle.is_empty() && !handle.contains('/') && handle != ".." {
            let dir = c.volume_dir(&handle);
            if dir.exists()
                && let Err(e) = std::fs::remove_dir_all(&dir)
            {
                tracing::warn!("cannot remove the volume folder {}: {e}", dir.display());
            }
        }
        return Ok(());
    }
    let status = json!({"phase": "Released", "lastPhaseTransitionTime": pv["status"]["lastPhaseTransitionTime"]});
    set_status(c, "", "persistentvolumes", pv, status).map(|_| ())
}

/// VolumeSnapshots within `scope` and the contents (all of them: they are
/// cluster-scoped). Returns whether it failed on one.
pub fn snapshots(c: &mut Cluster, scope: &Scope, copies: &mut Vec<Copy>) -> bool {
    let group = "snapshot.storage.k8s.io";
    if info(c, group, "volumesnapshots").is_err() {
        return false;
    }
    let mut failed = false;
    let unready = in_scope(c, scope, group, "volumesnapshots", |s| {
        !deleting(s) && s["status"]["readyToUse"] != true
    });
    for s in unready {
        failed |= log_err(
            &format!("snapshot {}", name_of(&s)),
            snapshot(c, &s, copies),
        );
    }
    for content in list(c, group, "volumesnapshotcontents", None, |_| true) {
        failed |= log_err(
            &format!("snapshot content {}", name_of(&content)),
            reclaim_content(c, &content),
        );
    }
    failed
}

fn snapshot_error(c: &mut Cluster, s: &Value, message: &str) -> ApiResult<()> {
    event(c, s, "Warning", "SnapshotCreationFailed", message);
    let mut status = s["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    status["readyToUse"] = json!(false);
    if status["error"]["message"] != message {
        status["error"] = json!({"message": message, "time": now()});
    }
    set_status(c, "snapshot.storage.k8s.io", "volumesnapshots", s, status).map(|_| ())
}

fn snapshot(c: &mut Cluster, s: &Value, copies: &mut Vec<Copy>) -> ApiResult<()> {
    let ns = ns_of(s).unwrap_or("default").to_string();
    let group = "snapshot.storage.k8s.io";
    // A pre-provisioned snapshot: its content exists and names a handle.
    if let Some(content_name) = s["spec"]["source"]["volumeSnapshotContentName"].as_str() {
        let Some(content) = get(c, group, "volumesnapshotcontents", None, content_name) else {
            return snapshot_error(
                c,
                s,
                &format!("VolumeSnapshotContent {content_name} not found"),
            );
        };
        let handle = content["spec"]["source"]["snapshotHandle"]
            .as_str()
            .or(content["status"]["snapshotHandle"].as_str())
            .unwrap_or("")
            .to_string();
        let ready = !handle.is_empty() && c.volume_dir(&handle).is_dir();
        let size = content["status"]["restoreSize"].as_i64().unwrap_or(0);
        let cstatus = json!({"snapshotHandle": handle, "readyToUse": ready, "restoreSize": size,
                             "creationTime": content["status"]["creationTime"].as_i64().unwrap_or_else(unix_nanos)});
        set_status(c, group, "volumesnapshotcontents", &content, cstatus)?;
        let status = json!({"boundVolumeSnapshotContentName": content_name, "readyToUse": ready,
                            "restoreSize": size.to_string(), "creationTime": s["status"]["creationTime"].as_str().map_or_else(now, str::to_string)});
        return set_status(c, group, "volumesnapshots", s, status).map(|_| ());
    }
    let Some(claim) = s["spec"]["source"]["persistentVolumeClaimName"].as_str() else {
        return snapshot_error(
            c,
            s,
            "spec.source names neither a PersistentVolumeClaim nor a VolumeSnapshotContent",
        );
    };
    let pv = get(c, "", "persistentvolumeclaims", Some(&ns), claim)
        .filter(|p| p["status"]["phase"] == "Bound")
        .and_then(|p| {
            p["spec"]["volumeName"]
                .as_str()
                .and_then(|v| get(c, "", "persistentvolumes", None, v))
        });
    let Some(pv) = pv else {
        return snapshot_error(
            c,
            s,
            &format!(
                "the source PersistentVolumeClaim \"{claim}\" does not exist or is not bound yet"
            ),
        );
    };
    let driver = pv["spec"]["csi"]["driver"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let source_handle = pv["spec"]["csi"]["volumeHandle"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let class = match s["spec"]["volumeSnapshotClassName"].as_str() {
        Some(name) => get(c, group, "volumesnapshotclasses", None, name),
        None => c
            .store
            .list(group, "volumesnapshotclasses", None)
            .map(|(_, vc)| vc)
            .find(|vc| {
                vc["driver"] == driver.as_str()
                    && vc["metadata"]["annotations"]["snapshot.storage.kubernetes.io/is-default-class"] == "true"
            })
            .cloned(),
    };
    let Some(class) = class else {
        return snapshot_error(
            c,
            s,
            &format!(
                "no VolumeSnapshotClass for driver {driver}: name one in spec.volumeSnapshotClassName or create a default class for that driver"
            ),
        );
    };
    if class["driver"] != driver.as_str() {
        return snapshot_error(
            c,
            s,
            &format!(
                "VolumeSnapshotClass {} is for driver {}, but the volume is provisioned by {driver}",
                name_of(&class),
                class["driver"].as_str().unwrap_or("")
            ),
        );
    }
    let content_name = format!("snapcontent-{}", uid_of(s));
    let handle = format!("snapshot-{}", uid_of(s));
    let content = match get(c, group, "volumesnapshotcontents", None, &content_name) {
        Some(ct) => ct,
        None => create(
            c,
            group,
            "volumesnapshotcontents",
            None,
            json!({
                "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name},
                "spec": {
                    "deletionPolicy": class["deletionPolicy"].as_str().unwrap_or("Delete"),
                    "driver": driver,
                    "source": {"volumeHandle": source_handle},
                    "volumeSnapshotClassName": class["metadata"]["name"],
                    "volumeSnapshotRef": {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                                          "name": s["metadata"]["name"], "namespace": ns, "uid": s["metadata"]["uid"],
                                          "resourceVersion": s["metadata"]["resourceVersion"]},
                },
            }),
        )?,
    };
    let created = s["status"]["creationTime"]
        .as_str()
        .map_or_else(now, str::to_string);
    let size = pv["spec"]["capacity"]["storage"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let target = c.volume_dir(&handle);
    let ready = target.is_dir();
    if !ready {
        let from = c.volume_dir(&source_handle);
        if !from.is_dir() {
            return snapshot_error(
                c,
                s,
                &format!(
                    "the volume {} has no contents folder {}",
                    name_of(&pv),
                    from.display()
                ),
            );
        }
        copies.push(Copy { from, to: target });
    }
    let nanos = content["status"]["creationTime"]
        .as_i64()
        .unwrap_or_else(unix_nanos);
    let mut cstatus = json!({"readyToUse": ready, "creationTime": nanos,
                             "restoreSize": parse_quantity(&size).unwrap_or(0) as u64});
    if ready {
        cstatus["snapshotHandle"] = json!(handle);
    }
    set_status(c, group, "volumesnapshotcontents", &content, cstatus)?;
    let status = json!({"boundVolumeSnapshotContentName": content_name, "readyToUse": ready,
                        "restoreSize": size, "creationTime": created});
    set_status(c, group, "volumesnapshots", s, status).map(|_| ())
}

fn unix_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
}

/// Deletes a content (and its folder) whose snapshot is gone, when its policy says so.
fn reclaim_content(c: &mut Cluster, content: &Value) -> ApiResult<()> {
    let r = &content["spec"]["volumeSnapshotRef"];
    let uid = r["uid"].as_str().unwrap_or("");
    if uid.is_empty() || deleting(content) {
        return Ok(());
    }
    let snap = get(
        c,
        "snapshot.storage.k8s.io",
        "volumesnapshots",
        r["namespace"].as_str(),
        r["name"].as_str().unwrap_or(""),
    );
    if snap.is_some_and(|s| uid_of(&s) == uid) || content["spec"]["deletionPolicy"] != "Delete" {
        return Ok(());
    }
    let handle = content["status"]["snapshotHandle"]
        .as_str()
        .or(content["spec"]["source"]["snapshotHandle"].as_str())
        .unwrap_or("")
        .to_string();
    delete(
        c,
        "snapshot.storage.k8s.io",
        "volumesnapshotcontents",
        content,
    )?;
    if !handle.is_empty() && !handle.contains('/') && handle != ".." {
        let dir = c.volume_dir(&handle);
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!("cannot remove the snapshot folder {}: {e}", dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("500M"), Some(500_000_000));
        assert_eq!(parse_quantity("1.5Ki"), Some(1536));
        assert_eq!(parse_quantity("42"), Some(42));
        assert_eq!(parse_quantity("1Zi"), None);
    }

    #[test]
    fn copies_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a");
        std::fs::create_dir_all(from.join("sub")).unwrap();
        std::fs::write(from.join("sub/f"), b"data").unwrap();
        std::os::unix::fs::symlink("sub/f", from.join("link")).unwrap();
        let to = dir.path().join("b");
        copy_volume(&from, &to).unwrap();
        assert_eq!(std::fs::read(to.join("sub/f")).unwrap(), b"data");
        assert_eq!(
            std::fs::read_link(to.join("link")).unwrap(),
            Path::new("sub/f")
        );
        assert!(!dir.path().join(".b.partial").exists());
    }

    #[test]
    fn demo_classes_mimic_two_clouds() {
        let (prod, prod_snap) = demo_classes("prod");
        assert_eq!(prod[0].name, "ebs-sc");
        assert_eq!(prod[0].to_object()["parameters"]["type"], "gp3");
        assert_eq!(prod_snap[0].driver, EBS_PROVISIONER);
        let (qa, _) = demo_classes("qa");
        let names: Vec<_> = qa.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["gp2", "gp3"]);
        assert_eq!(demo_classes("dev").0, vec![StorageClassSpec::standard()]);
    }
}

//! Volume contents of sandbox clusters: where a claim's data lives and its checksums.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Api;

/// The host folder of a claim's volume in the sandbox whose folder is `sandbox_dir`,
/// once the claim is bound (a class that binds for a first consumer binds late): at
/// most a minute.
pub async fn volume_dir(
    client: &kube::Client,
    sandbox_dir: &Path,
    ns: &str,
    claim: &str,
) -> PathBuf {
    let mut pv_name = None;
    for _ in 0..600 {
        let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
            .get(claim)
            .await
            .unwrap_or_else(|e| panic!("claim {ns}/{claim}: {e}"));
        pv_name = pvc.spec.and_then(|s| s.volume_name);
        if pv_name.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let pv_name = pv_name.unwrap_or_else(|| panic!("claim {ns}/{claim} is not bound"));
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&pv_name)
        .await
        .unwrap_or_else(|e| panic!("volume {pv_name}: {e}"));
    let handle = pv
        .spec
        .and_then(|s| s.csi)
        .map(|c| c.volume_handle)
        .unwrap_or_else(|| panic!("volume {pv_name} is not a CSI volume"));
    sandbox_dir.join("volumes").join(handle)
}

/// BLAKE3 of every file below `dir`, by relative path.
pub fn checksums(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        let entries = std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(root, &p, out),
                Ok(t) if t.is_file() => {
                    let bytes =
                        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    out.insert(rel, blake3::hash(&bytes).to_hex().to_string());
                }
                _ => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

//! What a container's view is made of, read from the store: the host folder behind
//! each volume (a claim's bound PersistentVolume, a hostPath inside the sandbox folder),
//! the files of configMap, secret, projected and downwardAPI volumes, and the
//! container's environment (`env`, `envFrom`, `valueFrom`, `$(VAR)` references).
//!
//! Owns reading those sources. Must not make folders or files (`runtime.rs` does) nor
//! run anything.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use super::store::Key;
use super::verbs::{ApiError, ApiResult, Cluster};

pub(super) fn bad(message: String) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

fn get<'a>(c: &'a Cluster, resource: &str, ns: &str, name: &str) -> Option<&'a Value> {
    c.store.get(&Key::new("", resource, ns, name))
}

/// A relative path with no `..`, as items' `path` and `subPath` must be.
pub(super) fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    (!p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_))))
        .then(|| path.to_path_buf())
}

fn field_value(pod: &Value, field: &str) -> Option<String> {
    let s = |ptr: &str| pod.pointer(ptr).and_then(Value::as_str).map(str::to_string);
    let lines = |v: &Value| {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", Value::String(v.as_str().unwrap_or("").into())))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    match field {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "metadata.labels" => Some(lines(&pod["metadata"]["labels"])),
        "metadata.annotations" => Some(lines(&pod["metadata"]["annotations"])),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName"),
        "status.podIP" => s("/status/podIP"),
        "status.hostIP" => s("/status/hostIP"),
        _ => {
            let key = field
                .strip_prefix("metadata.labels['")
                .map(|k| ("labels", k))
                .or_else(|| {
                    field
                        .strip_prefix("metadata.annotations['")
                        .map(|k| ("annotations", k))
                })?;
            let name = key.1.strip_suffix("']")?;
            pod["metadata"][key.0][name].as_str().map(str::to_string)
        }
    }
}

/// The keys of a ConfigMap or Secret, decoded.
fn keys_of(c: &Cluster, ns: &str, secret: bool, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let obj = get(c, if secret { "secrets" } else { "configmaps" }, ns, name)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = BTreeMap::new();
    if let Some(m) = obj["data"].as_object() {
        for (k, v) in m {
            let v = v.as_str().unwrap_or("");
            let bytes = if secret {
                b64.decode(v).unwrap_or_default()
            } else {
                v.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(m) = obj["binaryData"].as_object() {
        for (k, v) in m {
            out.insert(
                k.clone(),
                b64.decode(v.as_str().unwrap_or("")).unwrap_or_default(),
            );
        }
    }
    Some(out)
}

fn mode_of(v: &Value, default: u32) -> u32 {
    v.as_u64().map(|m| m as u32 & 0o777).unwrap_or(default)
}

/// The host folder of the claim `claim` (bound to a PersistentVolume).
pub(super) fn claim_dir(c: &Cluster, ns: &str, volume: &str, claim: &str) -> ApiResult<PathBuf> {
    let pvc = get(c, "persistentvolumeclaims", ns, claim).ok_or_else(|| {
        bad(format!(
            "the volume {volume} uses the PersistentVolumeClaim {claim}, which does not exist in {ns}"
        ))
    })?;
    let pv_name = pvc["spec"]["volumeName"].as_str().unwrap_or("");
    if pv_name.is_empty() || pvc["status"]["phase"].as_str() != Some("Bound") {
        return Err(bad(format!(
            "the PersistentVolumeClaim {claim} is not bound to a volume yet: wait until it is Bound"
        )));
    }
    let pv = get(c, "persistentvolumes", "", pv_name).ok_or_else(|| {
        bad(format!(
            "the PersistentVolumeClaim {claim} is bound to the PersistentVolume {pv_name}, which does not exist"
        ))
    })?;
    if let Some(handle) = pv["spec"]["csi"]["volumeHandle"].as_str() {
        if handle.is_empty() || handle.contains('/') || handle == "." || handle == ".." {
            return Err(bad(format!(
                "the PersistentVolume {pv_name} has the volumeHandle {handle:?}, which cannot name a folder: use a plain name"
            )));
        }
        return Ok(c.volume_dir(handle));
    }
    if let Some(p) = pv["spec"]["hostPath"]["path"].as_str() {
        return Ok(host_path_dir(c, p));
    }
    Err(bad(format!(
        "the PersistentVolume {pv_name} has neither spec.csi nor spec.hostPath: the sandbox cannot find its data"
    )))
}

/// A hostPath: used as is when it lies inside the sandbox's folder, else kept below
/// `<sandbox>/hostpath/` so pods never reach the host's own files.
pub(super) fn host_path_dir(c: &Cluster, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() && path.starts_with(&c.dir) && safe_relative_or_abs(path) {
        return path.to_path_buf();
    }
    let rel: PathBuf = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    c.dir.join("hostpath").join(rel)
}

fn safe_relative_or_abs(p: &Path) -> bool {
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::RootDir))
}

pub(super) type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// The files of a configMap, secret, projected or downwardAPI volume; `None` for other
/// volume types.
pub(super) fn volume_files(
    c: &Cluster,
    ns: &str,
    pod: &Value,
    v: &Value,
) -> ApiResult<Option<Files>> {
    let vname = v["name"].as_str().unwrap_or("");
    let mut files = Files::new();
    if let Some(src) = v.get("configMap") {
        let mode = mode_of(&src["defaultMode"], 0o644);
        keyed(c, ns, vname, false, src, mode, &mut files)?;
    } else if let Some(src) = v.get("secret") {
        let mode = mode_of(&src["defaultMode"], 0o644);
        keyed(c, ns, vname, true, src, mode, &mut files)?;
    } else if let Some(src) = v.get("downwardAPI") {
        let mode = mode_of(&src["defaultMode"], 0o644);
        downward(pod, vname, src, mode, &mut files)?;
    } else if let Some(src) = v.get("projected") {
        let mode = mode_of(&src["defaultMode"], 0o644);
        for s in src["sources"].as_array().into_iter().flatten() {
            if let Some(cm) = s.get("configMap") {
                keyed(c, ns, vname, false, cm, mode, &mut files)?;
            } else if let Some(sec) = s.get("secret") {
                keyed(c, ns, vname, true, sec, mode, &mut files)?;
            } else if let Some(d) = s.get("downwardAPI") {
                downward(pod, vname, d, mode, &mut files)?;
            } else if let Some(t) = s.get("serviceAccountToken") {
                // The pod's own bound token, as the kubelet writes it.
                let path = t["path"].as_str().unwrap_or("token");
                let rel = safe_relative(path).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "the token path {path:?} of volume {vname} is not a relative path inside it"
                    ))
                })?;
                let token = super::satokens::pod_token(c, ns, pod, t)?;
                files.insert(
                    rel.to_string_lossy().into_owned(),
                    (token.into_bytes(), mode),
                );
            }
            // clusterTrustBundle sources: the sandbox has no trust bundles.
        }
    } else {
        return Ok(None);
    }
    Ok(Some(files))
}

fn keyed(
    c: &Cluster,
    ns: &str,
    volume: &str,
    secret: bool,
    src: &Value,
    mode: u32,
    files: &mut Files,
) -> ApiResult<()> {
    let name = src[if secret { "secretName" } else { "name" }]
        .as_str()
        .or_else(|| src["name"].as_str())
        .unwrap_or("");
    let kind = if secret { "Secret" } else { "ConfigMap" };
    let optional = src["optional"].as_bool() == Some(true);
    let Some(keys) = keys_of(c, ns, secret, name) else {
        if optional {
            return Ok(());
        }
        return Err(bad(format!(
            "the volume {volume} needs the {kind} {name}, which does not exist in {ns}: create it"
        )));
    };
    match src["items"].as_array() {
        Some(items) => {
            for it in items {
                let key = it["key"].as_str().unwrap_or("");
                let path = it["path"].as_str().unwrap_or(key);
                let Some(bytes) = keys.get(key) else {
                    if optional {
                        continue;
                    }
                    return Err(bad(format!(
                        "the volume {volume} needs the key {key} of the {kind} {name}, which it does not have"
                    )));
                };
                let rel = safe_relative(path).ok_or_else(|| {
                    bad(format!(
                        "the item path {path:?} of volume {volume} is not a relative path"
                    ))
                })?;
                files.insert(
                    rel.to_string_lossy().into_owned(),
                    (bytes.clone(), mode_of(&it["mode"], mode)),
                );
            }
        }
        None => {
            for (k, bytes) in keys {
                if safe_relative(&k).is_some() {
                    files.insert(k, (bytes, mode));
                }
            }
        }
    }
    Ok(())
}

fn downward(pod: &Value, volume: &str, src: &Value, mode: u32, files: &mut Files) -> ApiResult<()> {
    for it in src["items"].as_array().into_iter().flatten() {
        let path = it["path"].as_str().unwrap_or("");
        let rel = safe_relative(path).ok_or_else(|| {
            bad(format!(
                "the item path {path:?} of volume {volume} is not a relative path"
            ))
        })?;
        let Some(field) = it["fieldRef"]["fieldPath"].as_str() else {
            continue;
        };
        let value = field_value(pod, field).unwrap_or_default();
        files.insert(
            rel.to_string_lossy().into_owned(),
            (value.into_bytes(), mode_of(&it["mode"], mode)),
        );
    }
    Ok(())
}

/// `$(NAME)` references to earlier variables expanded, `$$(` kept literal, as a kubelet.
pub(super) fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's `envFrom` and `env`, resolved.
pub(super) fn container_env(
    c: &Cluster,
    ns: &str,
    pod: &Value,
    ctr: &Value,
) -> ApiResult<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let cname = ctr["name"].as_str().unwrap_or("");
    for from in ctr["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        let (secret, r) = match (from.get("configMapRef"), from.get("secretRef")) {
            (Some(r), _) => (false, r),
            (None, Some(r)) => (true, r),
            _ => continue,
        };
        let name = r["name"].as_str().unwrap_or("");
        match keys_of(c, ns, secret, name) {
            Some(keys) => {
                for (k, v) in keys {
                    env.push((
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    ));
                }
            }
            None if r["optional"].as_bool() == Some(true) => {}
            None => {
                return Err(bad(format!(
                    "the container {cname} takes its environment from the {} {name}, which does not exist in {ns}",
                    if secret { "Secret" } else { "ConfigMap" }
                )));
            }
        }
    }
    for e in ctr["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("").to_string();
        if name.is_empty() {
            continue;
        }
        let value = if let Some(v) = e["value"].as_str() {
            Some(expand(v, &env))
        } else if let Some(from) = e.get("valueFrom") {
            let key_ref = |secret: bool, r: &Value| -> ApiResult<Option<String>> {
                let obj = r["name"].as_str().unwrap_or("");
                let key = r["key"].as_str().unwrap_or("");
                let value = keys_of(c, ns, secret, obj)
                    .and_then(|k| k.get(key).map(|v| String::from_utf8_lossy(v).into_owned()));
                match value {
                    Some(v) => Ok(Some(v)),
                    None if r["optional"].as_bool() == Some(true) => Ok(None),
                    None => Err(bad(format!(
                        "the variable {name} of container {cname} needs the key {key} of the {} {obj} in {ns}, which does not exist",
                        if secret { "Secret" } else { "ConfigMap" }
                    ))),
                }
            };
            if let Some(r) = from.get("configMapKeyRef") {
                key_ref(false, r)?
            } else if let Some(r) = from.get("secretKeyRef") {
                key_ref(true, r)?
            } else if let Some(f) = from["fieldRef"]["fieldPath"].as_str() {
                field_value(pod, f)
            } else {
                None
            }
        } else {
            Some(String::new())
        };
        if let Some(v) = value {
            env.retain(|(k, _)| *k != name);
            env.push((name, v));
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_expand() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y$(B)$$(A)", &env), "x1y$(B)$(A)");
    }
}

//! Helm's release records on their way into another namespace.
//!
//! Helm keeps each revision of a release in a Secret of type `helm.sh/release.v1` (or,
//! with `HELM_DRIVER=configmap`, a ConfigMap labelled `owner: helm`) whose `release`
//! key holds base64(gzip(JSON release)), as helm's storage driver writes it. The release
//! names its namespace and, in its `manifest` and hooks' manifests, the objects it
//! made. Copied as they are into another namespace, the records would still point at
//! the source's objects, and `helm upgrade` there would diff against (and could delete)
//! them. [`rewrite_release`] decodes a record, moves the release to its new namespace,
//! passes each manifest document through the caller's object transform and encodes the
//! record again; [`follow_release_namespace`] moves the mark helm leaves on the objects
//! it made. It reads and writes no cluster; hostile payloads are errors, never
//! panics, and unpack to [`MAX_RELEASE_BYTES`] at most.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;

use super::objects::ObjRef;

/// The Secret type of Helm's release records.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";
/// The most a release record may unpack to (its JSON).
pub const MAX_RELEASE_BYTES: u64 = 64 << 20;
/// What helm looks for to tell a gzipped record from plain JSON (older helm wrote those).
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Why a release record could not be rewritten.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// A base64 layer (the API's for Secret data, or helm's own) does not decode.
    #[error(
        "its {layer} is not valid base64 ({detail}): the record is damaged; check it with `helm history` in the source namespace"
    )]
    Base64 { layer: &'static str, detail: String },
    /// The gzip stream inside the record is damaged.
    #[error(
        "its gzip stream is damaged ({0}): the record is damaged; check it with `helm history` in the source namespace"
    )]
    Gzip(String),
    /// The record unpacks to more than [`MAX_RELEASE_BYTES`].
    #[error(
        "it unpacks to more than {} MiB, more than any release Ferry accepts: check the record, or leave it out of the restore",
        MAX_RELEASE_BYTES >> 20
    )]
    TooLarge,
    /// The unpacked record is not a JSON object.
    #[error(
        "its release is not JSON Helm could read ({0}): the record is damaged; check it with `helm history` in the source namespace"
    )]
    Json(String),
    /// A document of a manifest is not YAML.
    #[error(
        "document {index} of {which} is not valid YAML ({detail}): check it with `helm get manifest` in the source namespace"
    )]
    Yaml {
        which: String,
        index: usize,
        detail: String,
    },
    /// A rewritten document could not be written as YAML, or the record re-encoded.
    #[error(
        "cannot encode the rewritten {what} ({detail}); this is a bug in Ferry, please report it"
    )]
    Encode { what: String, detail: String },
}

/// The annotation by which helm tells which namespace's release made an object; helm
/// refuses to adopt an object whose annotation names another namespace.
pub const RELEASE_NAMESPACE_ANNOTATION: &str = "meta.helm.sh/release-namespace";

/// Maps the [`RELEASE_NAMESPACE_ANNOTATION`] of an object Helm made, so it names the
/// release's new namespace; the change in words, if any.
pub fn follow_release_namespace(
    obj: &mut Value,
    namespaces: &BTreeMap<String, String>,
) -> Option<String> {
    let a = obj
        .pointer_mut("/metadata/annotations")?
        .as_object_mut()?
        .get_mut(RELEASE_NAMESPACE_ANNOTATION)?;
    let from = a.as_str()?;
    let to = namespaces.get(from).filter(|to| *to != from)?;
    let line = format!("helm release namespace {from} -> {to}");
    *a = Value::String(to.clone());
    Some(line)
}

/// Where a record keeps its payload: a Secret's `data` is base64 once more.
#[derive(Clone, Copy, PartialEq)]
enum Driver {
    Secret,
    ConfigMap,
}

/// The storage driver of a Helm release record, or `None` for any other object.
fn driver(obj: &Value) -> Option<Driver> {
    let r = ObjRef::of(obj);
    obj["data"]["release"].as_str()?;
    if r.is("", "Secret") && obj["type"] == RELEASE_SECRET_TYPE {
        Some(Driver::Secret)
    } else if r.is("", "ConfigMap") && obj["metadata"]["labels"]["owner"] == "helm" {
        Some(Driver::ConfigMap)
    } else {
        None
    }
}

/// Whether `obj` is a Helm release record (a Secret or ConfigMap of helm's storage).
pub fn is_release_record(obj: &Value) -> bool {
    driver(obj).is_some()
}

/// Moves a Helm release record from namespace `from` to `to`: the release's namespace
/// becomes `to` and each document of its manifest and hooks' manifests goes through
/// `transform_doc` (Ferry's own object transform, so the record describes the objects
/// as restored). Returns the new record and what changed in words, or `None` when `obj`
/// is not a release record. Documents that do not change keep their text; changed ones
/// are written anew, after their `# Source:` comment.
pub fn rewrite_release(
    obj: &Value,
    from: &str,
    to: &str,
    transform_doc: &dyn Fn(&Value) -> (Value, Vec<String>),
) -> Result<Option<(Value, Vec<String>)>, HelmError> {
    let Some(driver) = driver(obj) else {
        return Ok(None);
    };
    let stored = obj["data"]["release"].as_str().unwrap_or_default();
    let payload = match driver {
        Driver::ConfigMap => stored.to_string(),
        Driver::Secret => {
            let bytes = B64.decode(stored.trim()).map_err(|e| HelmError::Base64 {
                layer: "Secret data",
                detail: e.to_string(),
            })?;
            String::from_utf8(bytes).map_err(|_| HelmError::Base64 {
                layer: "Secret data",
                detail: "it holds binary data, not helm's base64 text".into(),
            })?
        }
    };
    let mut release = decode(&payload, MAX_RELEASE_BYTES)?;

    let mut changed_docs = 0;
    if let Some(m) = release["manifest"].as_str() {
        let (text, n) = rewrite_manifest(m, "the manifest", transform_doc)?;
        release["manifest"] = Value::String(text);
        changed_docs += n;
    }
    let mut changed_hooks = 0;
    if let Some(hooks) = release["hooks"].as_array_mut() {
        for (i, h) in hooks.iter_mut().enumerate() {
            if let Some(m) = h["manifest"].as_str() {
                let which = format!("hook {}", h["name"].as_str().unwrap_or(&i.to_string()));
                let (text, n) = rewrite_manifest(m, &which, transform_doc)?;
                h["manifest"] = Value::String(text);
                changed_hooks += usize::from(n > 0);
            }
        }
    }
    release["namespace"] = Value::String(to.to_string());

    let encoded = encode(&release)?;
    let mut out = obj.clone();
    out["data"]["release"] = Value::String(match driver {
        Driver::ConfigMap => encoded,
        Driver::Secret => B64.encode(encoded),
    });
    let name = release["name"].as_str().unwrap_or("?");
    let mut line = format!(
        "helm release record {name} (revision {}): namespace {from} -> {to}, {changed_docs} manifest object(s) rewritten",
        release["version"]
    );
    if changed_hooks > 0 {
        line.push_str(&format!(", {changed_hooks} hook(s) rewritten"));
    }
    Ok(Some((out, vec![line])))
}

/// A release from helm's encoding: base64 of gzipped JSON, or of plain JSON (as older
/// helm wrote, and helm still reads); unpacking stops past `limit` bytes.
fn decode(payload: &str, limit: u64) -> Result<Value, HelmError> {
    let raw = B64.decode(payload.trim()).map_err(|e| HelmError::Base64 {
        layer: "release payload",
        detail: e.to_string(),
    })?;
    let json = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        MultiGzDecoder::new(raw.as_slice())
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| HelmError::Gzip(e.to_string()))?;
        if out.len() as u64 > limit {
            return Err(HelmError::TooLarge);
        }
        out
    } else {
        if raw.len() as u64 > limit {
            return Err(HelmError::TooLarge);
        }
        raw
    };
    let release: Value =
        serde_json::from_slice(&json).map_err(|e| HelmError::Json(e.to_string()))?;
    if !release.is_object() {
        return Err(HelmError::Json("not an object".into()));
    }
    Ok(release)
}

/// A release in helm's encoding: base64 of its JSON, gzipped at the best compression.
fn encode(release: &Value) -> Result<String, HelmError> {
    let failed = |e: std::io::Error| HelmError::Encode {
        what: "release record".into(),
        detail: e.to_string(),
    };
    let json = serde_json::to_vec(release).map_err(|e| HelmError::Encode {
        what: "release record".into(),
        detail: e.to_string(),
    })?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&json).map_err(failed)?;
    let packed = gz.finish().map_err(failed)?;
    Ok(B64.encode(packed))
}

/// A separator of YAML documents: `---` alone, or followed by a comment.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .map(str::trim)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
}

/// Each document of a multi-document manifest through `transform_doc`; the new text
/// and how many documents changed. Separators, comments and unchanged documents keep
/// their text.
fn rewrite_manifest(
    text: &str,
    which: &str,
    transform_doc: &dyn Fn(&Value) -> (Value, Vec<String>),
) -> Result<(String, usize), HelmError> {
    let mut out = String::with_capacity(text.len());
    let mut changed = 0;
    let mut index = 0;
    let mut doc = String::new();
    let mut flush = |doc: &mut String, out: &mut String| -> Result<(), HelmError> {
        index += 1;
        let new = rewrite_document(doc, which, index, transform_doc)?;
        if let Some(new) = new {
            out.push_str(&new);
            changed += 1;
        } else {
            out.push_str(doc);
        }
        doc.clear();
        Ok(())
    };
    for line in text.split_inclusive('\n') {
        if is_separator(line) {
            flush(&mut doc, &mut out)?;
            out.push_str(line);
        } else {
            doc.push_str(line);
        }
    }
    flush(&mut doc, &mut out)?;
    Ok((out, changed))
}

/// One document through `transform_doc`: its new text (leading comments kept), or
/// `None` when it is empty or does not change.
fn rewrite_document(
    doc: &str,
    which: &str,
    index: usize,
    transform_doc: &dyn Fn(&Value) -> (Value, Vec<String>),
) -> Result<Option<String>, HelmError> {
    // Leading comments and blank lines (helm's `# Source:` line) stay as written.
    let head_len: usize = doc
        .split_inclusive('\n')
        .take_while(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        })
        .map(str::len)
        .sum();
    let (head, body) = doc.split_at(head_len);
    if body.trim().is_empty() {
        return Ok(None);
    }
    let value: Value = serde_saphyr::from_str(body).map_err(|e| HelmError::Yaml {
        which: which.to_string(),
        index,
        detail: e.to_string(),
    })?;
    if !value.is_object() {
        return Ok(None);
    }
    let (new, _) = transform_doc(&value);
    if new == value {
        return Ok(None);
    }
    let mut yaml = serde_saphyr::to_string(&new).map_err(|e| HelmError::Encode {
        what: format!("document {index} of {which}"),
        detail: e.to_string(),
    })?;
    if !yaml.ends_with('\n') {
        yaml.push('\n');
    }
    Ok(Some(format!("{head}{yaml}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::{Mapping, transform};
    use serde_json::json;

    const MANIFEST: &str = "---\n# Source: shop/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-cm\n  namespace: shop\ndata:\n  port: \"80\"\n  enabled: \"yes\"\n---\n# Source: shop/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  ports:\n  - port: 80\n";

    fn release(manifest: &str) -> Value {
        json!({
            "name": "shop", "namespace": "shop", "version": 2,
            "info": {"status": "deployed"},
            "chart": {"metadata": {"name": "shop", "version": "0.1.0"}},
            "config": {"replicas": 1},
            "manifest": manifest,
            "hooks": [{"name": "shop-test", "kind": "Pod", "path": "shop/templates/test.yaml",
                "manifest": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shop-test\n  namespace: shop\n"}],
        })
    }

    fn gzipped(release: &Value) -> String {
        encode(release).unwrap()
    }

    fn plain(release: &Value) -> String {
        B64.encode(serde_json::to_vec(release).unwrap())
    }

    fn secret(payload: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "type": RELEASE_SECRET_TYPE,
            "metadata": {"name": "sh.helm.release.v1.shop.v2", "namespace": "shop",
                "labels": {"owner": "helm", "name": "shop", "status": "deployed", "version": "2"}},
            "data": {"release": B64.encode(payload)}})
    }

    fn config_map(payload: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "sh.helm.release.v1.shop.v2", "namespace": "shop",
                "labels": {"owner": "helm", "name": "shop", "status": "deployed", "version": "2"}},
            "data": {"release": payload}})
    }

    fn map() -> Mapping {
        Mapping {
            namespaces: [("shop".to_string(), "shop-qa".to_string())].into(),
            ..Mapping::default()
        }
    }

    fn rewrite(obj: &Value) -> Result<Option<(Value, Vec<String>)>, HelmError> {
        let m = map();
        rewrite_release(obj, "shop", "shop-qa", &|d| transform(d, &m))
    }

    /// The release a rewritten record holds, checking it is gzipped as helm writes it.
    fn unpacked(obj: &Value, secret: bool) -> Value {
        let stored = obj["data"]["release"].as_str().unwrap();
        let payload = if secret {
            String::from_utf8(B64.decode(stored).unwrap()).unwrap()
        } else {
            stored.to_string()
        };
        assert!(B64.decode(&payload).unwrap().starts_with(&GZIP_MAGIC));
        decode(&payload, MAX_RELEASE_BYTES).unwrap()
    }

    fn check_moved(r: &Value) {
        assert_eq!(r["namespace"], "shop-qa");
        assert_eq!(r["version"], 2);
        assert_eq!(r["config"], json!({"replicas": 1}));
        let m = r["manifest"].as_str().unwrap();
        assert!(!m.contains("namespace: shop\n"), "{m}");
        // The Service names no namespace: its text is kept as it was.
        assert!(
            m.ends_with("---\n# Source: shop/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  ports:\n  - port: 80\n"),
            "{m}"
        );
        assert!(
            m.starts_with("---\n# Source: shop/templates/cm.yaml\n"),
            "{m}"
        );
        let docs: Vec<Value> = serde_saphyr::from_multiple(m).unwrap();
        assert_eq!(docs.len(), 2, "{m}");
        assert_eq!(docs[0]["metadata"]["namespace"], "shop-qa");
        // Strings that look like other scalars stay strings.
        assert_eq!(docs[0]["data"], json!({"port": "80", "enabled": "yes"}));
        assert_eq!(docs[1]["spec"]["ports"][0]["port"], 80);
        let hook: Value =
            serde_saphyr::from_str(r["hooks"][0]["manifest"].as_str().unwrap()).unwrap();
        assert_eq!(hook["metadata"]["namespace"], "shop-qa");
        assert_eq!(r["hooks"][0]["name"], "shop-test");
    }

    #[test]
    fn a_secret_record_moves_with_its_manifest_and_hooks() {
        let obj = secret(&gzipped(&release(MANIFEST)));
        let (out, changes) = rewrite(&obj).unwrap().unwrap();
        check_moved(&unpacked(&out, true));
        assert_eq!(out["metadata"], obj["metadata"]);
        assert_eq!(out["type"], RELEASE_SECRET_TYPE);
        assert_eq!(
            changes,
            [
                "helm release record shop (revision 2): namespace shop -> shop-qa, 1 manifest object(s) rewritten, 1 hook(s) rewritten"
            ]
        );
    }

    #[test]
    fn plain_json_records_are_read_and_written_gzipped() {
        let obj = secret(&plain(&release(MANIFEST)));
        let (out, _) = rewrite(&obj).unwrap().unwrap();
        check_moved(&unpacked(&out, true));
    }

    #[test]
    fn config_map_records_hold_the_payload_without_another_base64() {
        let obj = config_map(&gzipped(&release(MANIFEST)));
        let (out, changes) = rewrite(&obj).unwrap().unwrap();
        check_moved(&unpacked(&out, false));
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn transform_moves_records_of_a_mapped_namespace_only() {
        let obj = secret(&gzipped(&release(MANIFEST)));
        let (out, changes) = transform(&obj, &map());
        assert_eq!(out["metadata"]["namespace"], "shop-qa");
        check_moved(&unpacked(&out, true));
        assert!(
            changes
                .iter()
                .any(|c| c.starts_with("helm release record shop")),
            "{changes:?}"
        );
        let (same, changes) = transform(&obj, &Mapping::default());
        assert_eq!(same["data"], obj["data"]);
        assert!(changes.is_empty(), "{changes:?}");
        // A damaged record is kept as it was, and the plan says so.
        let bad = secret("not base64!");
        let (out, changes) = transform(&bad, &map());
        assert_eq!(out["data"], bad["data"]);
        assert!(
            changes.iter().any(|c| c.contains("could not be rewritten")),
            "{changes:?}"
        );
    }

    #[test]
    fn objects_helm_made_name_the_release_s_new_namespace() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "annotations": {
                "meta.helm.sh/release-name": "web", RELEASE_NAMESPACE_ANNOTATION: "shop"}}});
        let (o, changes) = transform(&d, &map());
        assert_eq!(
            o["metadata"]["annotations"][RELEASE_NAMESPACE_ANNOTATION],
            "shop-qa"
        );
        assert_eq!(
            o["metadata"]["annotations"]["meta.helm.sh/release-name"],
            "web"
        );
        assert!(
            changes.contains(&"helm release namespace shop -> shop-qa".to_string()),
            "{changes:?}"
        );
        let (o, changes) = transform(&d, &Mapping::default());
        assert_eq!(
            o["metadata"]["annotations"][RELEASE_NAMESPACE_ANNOTATION],
            "shop"
        );
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn other_objects_are_not_records() {
        let opaque = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "db", "namespace": "shop"}, "data": {"release": "eA=="}});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "shop"}, "data": {"release": "1.0"}});
        let no_key = json!({"apiVersion": "v1", "kind": "Secret", "type": RELEASE_SECRET_TYPE,
            "metadata": {"name": "x", "namespace": "shop"}, "data": {}});
        for o in [opaque, cm, no_key] {
            assert!(!is_release_record(&o));
            assert!(rewrite(&o).unwrap().is_none());
        }
    }

    #[test]
    fn damaged_records_are_errors() {
        let err = |obj: Value| rewrite(&obj).unwrap_err();
        assert!(matches!(
            err(secret("%%%")),
            HelmError::Base64 {
                layer: "release payload",
                ..
            }
        ));
        let mut s = secret("");
        s["data"]["release"] = json!("%%%");
        assert!(matches!(
            err(s),
            HelmError::Base64 {
                layer: "Secret data",
                ..
            }
        ));
        let mut junk = GZIP_MAGIC.to_vec();
        junk.extend_from_slice(b"not a gzip stream at all");
        assert!(matches!(
            err(config_map(&B64.encode(&junk))),
            HelmError::Gzip(_)
        ));
        assert!(matches!(
            err(config_map(&B64.encode("{\"name\": "))),
            HelmError::Json(_)
        ));
        assert!(matches!(
            err(config_map(&B64.encode("[1, 2]"))),
            HelmError::Json(_)
        ));
        let bad_yaml = "---\n# Source: shop/templates/x.yaml\nkind: [unclosed\n";
        let e = err(config_map(&gzipped(&release(bad_yaml))));
        assert!(matches!(&e, HelmError::Yaml { index: 2, .. }), "{e:?}");
        assert!(e.to_string().contains("document 2 of the manifest"), "{e}");
    }

    #[test]
    fn records_unpacking_past_the_limit_are_refused() {
        let big = json!({"name": "shop", "manifest": "x".repeat(10_000)});
        let payload = gzipped(&big);
        assert!(matches!(decode(&payload, 1000), Err(HelmError::TooLarge)));
        assert!(matches!(
            decode(&plain(&big), 1000),
            Err(HelmError::TooLarge)
        ));
        assert!(decode(&payload, 20_000).is_ok());
    }
}

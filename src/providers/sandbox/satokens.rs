//! Service account tokens, as a cluster's token controller and TokenRequest API issue
//! them: a Secret of type `kubernetes.io/service-account-token` naming a ServiceAccount
//! gets `token`, `ca.crt` and `namespace` filled in, and `serviceaccounts/<name>/token`
//! (`kubectl create token`) answers a TokenRequest with a bound, expiring token. The
//! server accepts both as the service account (`system:serviceaccount:<ns>:<name>`) for
//! as long as the account (and, for a Secret's token, the Secret) exists unchanged.
//!
//! Tokens are JWT-shaped (`header.claims.signature`, base64url) with the claims a real
//! cluster puts in, signed with a keyed BLAKE3 MAC under the sandbox's own key
//! (`sa-signing.key` in its folder, owner-only). Owns that key and the token format;
//! who may do what with a token is RBAC's business.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::SandboxError;
use super::changes::Scope;
use super::controllers::{self, in_scope, log_err};
use super::server::User;
use super::verbs::{ApiError, ApiResult, Cluster, now};

/// The file holding the signing key, in the sandbox's folder.
const KEY_FILE: &str = "sa-signing.key";
/// The Secret type the token controller fills.
pub const TOKEN_SECRET: &str = "kubernetes.io/service-account-token";
/// The annotation naming a token Secret's ServiceAccount.
const SA_NAME: &str = "kubernetes.io/service-account.name";
/// The annotation recording that ServiceAccount's UID.
const SA_UID: &str = "kubernetes.io/service-account.uid";
/// The issuer and default audience of every token.
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// What a TokenRequest without `expirationSeconds` gets, and the shortest allowed.
const DEFAULT_EXPIRY: i64 = 3600;
const MIN_EXPIRY: i64 = 600;

/// The signing key in `dir`, created (random, owner-only) the first time.
pub fn load_or_create_key(dir: &Path) -> Result<[u8; 32], SandboxError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| SandboxError::State {
            path,
            detail: "not a 32-byte key: delete it and restart the sandbox (tokens issued so far stop working)".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| {
                SandboxError::Internal(format!("no randomness for the signing key: {e}"))
            })?;
            super::store::write_atomic(&path, &key)?;
            Ok(key)
        }
        Err(source) => Err(SandboxError::Io { path, source }),
    }
}

fn mac(key: &[u8; 32], signed: &str) -> String {
    URL_SAFE_NO_PAD.encode(blake3::keyed_hash(key, signed.as_bytes()).as_bytes())
}

/// A token carrying `claims`.
fn sign(key: &[u8; 32], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ferry-blake3","kid":"sandbox","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{body}");
    let sig = mac(key, &signed);
    format!("{signed}.{sig}")
}

/// The claims of a token this key signed, if it did and it has not expired.
fn verify(key: &[u8; 32], token: &str, now_unix: i64) -> Option<Value> {
    if key.iter().all(|b| *b == 0) {
        return None;
    }
    let (signed, sig) = token.rsplit_once('.')?;
    let (_, body) = signed.split_once('.')?;
    let expected = mac(key, signed);
    // Both are the same length of base64; compare without an early exit.
    if expected.len() != sig.len()
        || expected
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
    {
        return None;
    }
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
    if claims["exp"].as_i64().is_some_and(|exp| exp <= now_unix) {
        return None;
    }
    Some(claims)
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The service account a token stands for, if this sandbox issued it, it is still
/// valid, and what it is bound to (the account, its Secret or its pod) still exists.
pub fn authenticate(c: &Cluster, token: &str) -> Option<User> {
    let claims = verify(&c.sa_key, token, unix_now())?;
    let k = &claims["kubernetes.io"];
    let ns = k["namespace"].as_str()?;
    let name = k["serviceaccount"]["name"].as_str()?;
    let sa = controllers::get(c, "", "serviceaccounts", Some(ns), name)?;
    if sa["metadata"]["uid"] != k["serviceaccount"]["uid"] {
        return None;
    }
    for (bound, plural) in [("secret", "secrets"), ("pod", "pods")] {
        if let Some(obj) = k[bound]["name"].as_str() {
            let live = controllers::get(c, "", plural, Some(ns), obj)?;
            if live["metadata"]["uid"] != k[bound]["uid"] {
                return None;
            }
        }
    }
    Some(User {
        name: format!("system:serviceaccount:{ns}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    })
}

/// The token controller: every token Secret within `scope` whose ServiceAccount exists
/// gets its token, the cluster's CA and its namespace (once; a Secret already filled is
/// left alone). Returns whether it failed on one.
pub fn fill_secrets(c: &mut Cluster, scope: &Scope) -> bool {
    let unfilled = in_scope(c, scope, "", "secrets", |secret| {
        secret["type"] == TOKEN_SECRET && !secret["data"]["token"].is_string()
    });
    let mut failed = false;
    for secret in unfilled {
        let meta = &secret["metadata"];
        let (Some(ns), Some(sa_name)) = (
            meta["namespace"].as_str(),
            meta["annotations"][SA_NAME].as_str(),
        ) else {
            continue;
        };
        let Some(sa) = controllers::get(c, "", "serviceaccounts", Some(ns), sa_name) else {
            continue;
        };
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            "sub": format!("system:serviceaccount:{ns}:{sa_name}"),
            "kubernetes.io": {
                "namespace": ns,
                "serviceaccount": {"name": sa_name, "uid": sa["metadata"]["uid"]},
                "secret": {"name": meta["name"], "uid": meta["uid"]},
            },
        });
        let token = sign(&c.sa_key, &claims);
        let mut filled = secret.clone();
        filled["metadata"]["annotations"][SA_UID] = sa["metadata"]["uid"].clone();
        filled["data"]["token"] = json!(STANDARD.encode(&token));
        filled["data"]["ca.crt"] = json!(STANDARD.encode(&c.ca_pem));
        filled["data"]["namespace"] = json!(STANDARD.encode(ns));
        failed |= log_err(
            "filling a service account token",
            controllers::update(c, "", "secrets", filled).map(|_| ()),
        );
    }
    failed
}

/// `POST …/serviceaccounts/<name>/token`: a TokenRequest answered with a token for
/// the account, expiring after `spec.expirationSeconds` (default one hour, at least ten
/// minutes) and bound to a Secret or Pod when `spec.boundObjectRef` names one.
pub fn token_request(c: &Cluster, ns: &str, name: &str, request: &Value) -> ApiResult<Value> {
    let sa = controllers::get(c, "", "serviceaccounts", Some(ns), name).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("serviceaccounts \"{name}\" not found"),
        )
    })?;
    let spec = &request["spec"];
    let seconds = spec["expirationSeconds"].as_i64().unwrap_or(DEFAULT_EXPIRY);
    if seconds < MIN_EXPIRY {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            format!("may not specify a duration less than {MIN_EXPIRY} seconds"),
        ));
    }
    let audiences = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!([ISSUER]),
    };
    let issued = unix_now();
    let mut k8s = json!({
        "namespace": ns,
        "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]},
    });
    let bound = &spec["boundObjectRef"];
    if let (Some(kind), Some(obj)) = (bound["kind"].as_str(), bound["name"].as_str()) {
        let (plural, key) = match kind {
            "Secret" => ("secrets", "secret"),
            "Pod" => ("pods", "pod"),
            other => {
                return Err(invalid(
                    name,
                    "spec.boundObjectRef.kind",
                    format!("{other:?} is not a Pod or a Secret"),
                ));
            }
        };
        let live = controllers::get(c, "", plural, Some(ns), obj).ok_or_else(|| {
            ApiError::new(404, "NotFound", format!("{plural} \"{obj}\" not found"))
        })?;
        k8s[key] = json!({"name": obj, "uid": live["metadata"]["uid"]});
    }
    let claims = json!({
        "iss": ISSUER,
        "aud": audiences,
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "iat": issued,
        "nbf": issued,
        "exp": issued + seconds,
        "kubernetes.io": k8s,
    });
    let expires = chrono::DateTime::from_timestamp(issued + seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(now);
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": Value::Null},
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": if bound.is_object() { bound.clone() } else { Value::Null },
        },
        "status": {"token": sign(&c.sa_key, &claims), "expirationTimestamp": expires},
    }))
}

/// The token a projected `serviceAccountToken` source gives `pod`: its service
/// account's, bound to the pod, for the source's audience and lifetime (an hour by
/// default, as the kubelet asks).
pub fn pod_token(c: &Cluster, ns: &str, pod: &Value, source: &Value) -> ApiResult<String> {
    let sa = pod["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let mut spec = json!({
        "expirationSeconds": source["expirationSeconds"].as_i64().unwrap_or(3607).max(MIN_EXPIRY),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
    });
    if let Some(aud) = source["audience"].as_str().filter(|a| !a.is_empty()) {
        spec["audiences"] = json!([aud]);
    }
    let answer = token_request(c, ns, sa, &json!({ "spec": spec }))?;
    Ok(answer["status"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

fn invalid(name: &str, field: &str, detail: String) -> ApiError {
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!(
            "TokenRequest.authentication.k8s.io \"{name}\" is invalid: {field}: Invalid value: {detail}"
        ),
    );
    e.details = json!({
        "name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
        "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]
    });
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_under_their_key_and_until_they_expire() {
        let key = [7u8; 32];
        let claims = json!({"sub": "x", "exp": 1000});
        let t = sign(&key, &claims);
        assert_eq!(verify(&key, &t, 999), Some(claims.clone()));
        assert_eq!(verify(&key, &t, 1000), None, "expired");
        assert_eq!(verify(&[8u8; 32], &t, 999), None, "another key");
        assert_eq!(verify(&[0u8; 32], &t, 999), None, "no key");
        let mut forged = t.clone();
        forged.replace_range(t.len() - 2.., "AA");
        assert_eq!(verify(&key, &forged, 999), None);
        let (head, _) = t.split_once('.').unwrap();
        let other = URL_SAFE_NO_PAD.encode(json!({"sub": "admin"}).to_string());
        let sig = t.rsplit_once('.').unwrap().1;
        assert_eq!(verify(&key, &format!("{head}.{other}.{sig}"), 999), None);
        assert_eq!(verify(&key, "garbage", 999), None);
    }
}

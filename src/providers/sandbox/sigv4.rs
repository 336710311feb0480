//! AWS Signature Version 4 checked the way AWS checks it, for the sandbox cloud: the
//! canonical request is rebuilt from what was received (method, path, query, the signed
//! headers, the payload hash), the signing key derived from the secret the sandbox knows
//! for the access key, and the signature compared. Both forms are served: the
//! `Authorization` header (SDK calls to the EKS and STS APIs) and presigned query
//! parameters (the STS `GetCallerIdentity` URL inside an EKS bearer token).
//!
//! Owns signature checks only: who a key belongs to and what it may do is the caller's.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

/// How far a request's time may be from the sandbox's clock (as AWS allows).
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("the request is not signed: {0}")]
    Unsigned(String),
    #[error("the request's signature is malformed: {0}")]
    Malformed(String),
    #[error("the access key {0} is not known")]
    UnknownKey(String),
    #[error("the signature does not match: check the secret access key")]
    Mismatch,
    #[error("the signature has expired or is not yet valid ({0})")]
    Expired(String),
}

/// What a valid signature says about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub access_key: String,
    pub region: String,
    pub service: String,
    /// The request's signing time.
    pub time: SystemTime,
}

/// A received request, as the signature covers it.
#[derive(Debug)]
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header names (any case) and values; a name may repeat.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, SigError> {
    let mut m = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|e| SigError::Malformed(format!("HMAC key: {e}")))?;
    m.update(data);
    Ok(m.finalize().into_bytes().to_vec())
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 encoding as SigV4 uses it (unreserved kept; `/` kept when `keep_slash`).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    super::server::percent_decode(s, false)
}

/// The query's parameters, decoded, in the order sent.
pub fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn canonical_query(params: &[(String, String)], skip: Option<&str>) -> String {
    let mut enc: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .map(|(k, v)| (encode(k, false), encode(v, false)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_headers(headers: &[(String, String)], signed: &[&str]) -> Result<String, SigError> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigError::Malformed(format!(
                "the signed header {name} was not sent"
            )));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// `20250102T030405Z` as a time.
pub fn parse_amz_date(s: &str) -> Result<SystemTime, SigError> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .map_err(|e| SigError::Malformed(format!("date {s:?}: {e}")))?;
    let secs = u64::try_from(t.and_utc().timestamp())
        .map_err(|_| SigError::Malformed(format!("date {s:?} is before 1970")))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

struct Parts<'a> {
    access_key: &'a str,
    day: &'a str,
    region: &'a str,
    service: &'a str,
}

fn parse_credential(credential: &str) -> Result<Parts<'_>, SigError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, day, region, service, "aws4_request"] = parts.as_slice() else {
        return Err(SigError::Malformed(format!(
            "credential scope {credential:?}"
        )));
    };
    Ok(Parts {
        access_key,
        day,
        region,
        service,
    })
}

fn signature(
    secret: &str,
    p: &Parts<'_>,
    date: &str,
    canonical_request: &str,
) -> Result<String, SigError> {
    let scope = format!("{}/{}/{}/aws4_request", p.day, p.region, p.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k = hmac(format!("AWS4{secret}").as_bytes(), p.day.as_bytes())?;
    let k = hmac(&k, p.region.as_bytes())?;
    let k = hmac(&k, p.service.as_bytes())?;
    let k = hmac(&k, b"aws4_request")?;
    Ok(hex::encode(hmac(&k, to_sign.as_bytes())?))
}

fn same(a: &str, b: &str) -> bool {
    // Constant time in the length of the expected signature.
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks a request signed in its `Authorization` header. `secret_of` gives the secret
/// of an access key the sandbox knows.
pub fn verify_header(
    r: &Received<'_>,
    secret_of: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
) -> Result<Signed, SigError> {
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let auth = header("authorization")
        .ok_or_else(|| SigError::Unsigned("no Authorization header".into()))?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| SigError::Malformed("not AWS4-HMAC-SHA256".into()))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut sig = None;
    for item in rest.split(',') {
        let (k, v) = item.trim().split_once('=').unwrap_or((item.trim(), ""));
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => sig = Some(v),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(sig)) = (credential, signed_headers, sig)
    else {
        return Err(SigError::Malformed(
            "Authorization lacks Credential, SignedHeaders or Signature".into(),
        ));
    };
    let p = parse_credential(credential)?;
    let date = header("x-amz-date").ok_or_else(|| SigError::Malformed("no X-Amz-Date".into()))?;
    let time = parse_amz_date(date)?;
    check_window(time, now, MAX_SKEW)?;
    let secret =
        secret_of(p.access_key).ok_or_else(|| SigError::UnknownKey(p.access_key.into()))?;
    let signed: Vec<&str> = signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(SigError::Malformed("the host header is not signed".into()));
    }
    let payload = match header("x-amz-content-sha256") {
        Some(h) => h.to_string(),
        None => sha256_hex(r.body),
    };
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        r.method,
        encode(r.path, true),
        canonical_query(&query_params(r.query), None),
        canonical_headers(&r.headers, &signed)?,
        signed_headers,
        payload
    );
    if !same(&signature(&secret, &p, date, &canonical)?, sig) {
        return Err(SigError::Mismatch);
    }
    Ok(Signed {
        access_key: p.access_key.into(),
        region: p.region.into(),
        service: p.service.into(),
        time,
    })
}

/// Checks a presigned GET URL's query signature, with `headers` the headers the holder
/// says were signed along (for an EKS token: `host` and `x-k8s-aws-id`). The URL is
/// valid from its date for `max_age` (EKS accepts tokens for 15 minutes).
pub fn verify_presigned(
    url: &str,
    headers: &[(String, String)],
    secret_of: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
    max_age: Duration,
) -> Result<Signed, SigError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| SigError::Malformed("not an https URL".into()))?;
    let (authority, path_query) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let params = query_params(query);
    let get = |k: &str| params.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(SigError::Unsigned(
            "no X-Amz-Algorithm=AWS4-HMAC-SHA256".into(),
        ));
    }
    let sig =
        get("X-Amz-Signature").ok_or_else(|| SigError::Unsigned("no X-Amz-Signature".into()))?;
    let credential =
        get("X-Amz-Credential").ok_or_else(|| SigError::Malformed("no X-Amz-Credential".into()))?;
    let date = get("X-Amz-Date").ok_or_else(|| SigError::Malformed("no X-Amz-Date".into()))?;
    let signed_headers = get("X-Amz-SignedHeaders")
        .ok_or_else(|| SigError::Malformed("no X-Amz-SignedHeaders".into()))?;
    let p = parse_credential(credential)?;
    let time = parse_amz_date(date)?;
    if time > now + MAX_SKEW {
        return Err(SigError::Expired(format!(
            "signed at {date}, in the future"
        )));
    }
    if now.duration_since(time).unwrap_or_default() > max_age {
        return Err(SigError::Expired(format!(
            "signed at {date}, more than {} s ago",
            max_age.as_secs()
        )));
    }
    let secret =
        secret_of(p.access_key).ok_or_else(|| SigError::UnknownKey(p.access_key.into()))?;
    let mut all: Vec<(String, String)> = vec![("host".into(), authority.to_string())];
    all.extend(headers.iter().cloned());
    let signed: Vec<&str> = signed_headers.split(';').collect();
    let canonical = format!(
        "GET\n{}\n{}\n{}\n{}\n{}",
        encode(if path.is_empty() { "/" } else { path }, true),
        canonical_query(&params, Some("X-Amz-Signature")),
        canonical_headers(&all, &signed)?,
        signed_headers,
        sha256_hex(b"")
    );
    if !same(&signature(&secret, &p, date, &canonical)?, sig) {
        return Err(SigError::Mismatch);
    }
    Ok(Signed {
        access_key: p.access_key.into(),
        region: p.region.into(),
        service: p.service.into(),
        time,
    })
}

fn check_window(time: SystemTime, now: SystemTime, skew: Duration) -> Result<(), SigError> {
    let off = match now.duration_since(time) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if off > skew {
        return Err(SigError::Expired(format!(
            "{} s away from the server's clock",
            off.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(k: &str) -> Option<String> {
        (k == "AKID").then(|| "SECRET".to_string())
    }

    fn sign_presigned(cluster: &str, now: SystemTime) -> String {
        let creds = aws_credential_types::Credentials::new("AKID", "SECRET", None, None, "test");
        let token = ferry_providers::eks::token(
            &creds,
            "us-east-1",
            cluster,
            &ferry_providers::eks::sts_host("us-east-1"),
            now,
        )
        .unwrap();
        use base64::Engine as _;
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.trim_start_matches("k8s-aws-v1."))
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn presigned_urls_are_checked_against_the_secret_the_header_and_the_clock() {
        let now = SystemTime::now();
        let url = sign_presigned("prod", now);
        let hdr = |c: &str| vec![("x-k8s-aws-id".to_string(), c.to_string())];
        let age = Duration::from_secs(900);
        let ok = verify_presigned(&url, &hdr("prod"), &secret, now, age).unwrap();
        assert_eq!(ok.access_key, "AKID");
        assert_eq!(ok.service, "sts");
        assert_eq!(
            verify_presigned(&url, &hdr("other"), &secret, now, age),
            Err(SigError::Mismatch)
        );
        let wrong = |_: &str| Some("nope".to_string());
        assert_eq!(
            verify_presigned(&url, &hdr("prod"), &wrong, now, age),
            Err(SigError::Mismatch)
        );
        assert!(matches!(
            verify_presigned(&url, &hdr("prod"), &|_| None, now, age),
            Err(SigError::UnknownKey(_))
        ));
        let later = now + Duration::from_secs(16 * 60);
        assert!(matches!(
            verify_presigned(&url, &hdr("prod"), &secret, later, age),
            Err(SigError::Expired(_))
        ));
        let tampered = url.replace("Version=2011-06-15", "Version=2011-06-16");
        assert_eq!(
            verify_presigned(&tampered, &hdr("prod"), &secret, now, age),
            Err(SigError::Mismatch)
        );
    }
}

//! Talking to Azure Resource Manager: one shared HTTPS client (hyper-util's legacy
//! client over hyper-rustls on aws-lc-rs; plain HTTP only for loopback test servers),
//! OAuth2 tokens (a service principal's client-credentials grant, else `az account
//! get-access-token`) cached until shortly before they expire, retries of 429/503 that
//! honour `Retry-After`, Azure's JSON errors sorted into [`AksError`]s, `nextLink`
//! paging ([`paged`]) and long-running operations ([`poll_operation`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;

use super::{AksError, AzureSubscription, CreateEvent, Result, SCOPE};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Attempts per request (the first and the retries of throttled or unavailable answers).
const ATTEMPTS: u32 = 6;
/// The longest pause Ferry honours from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How long one HTTP exchange may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A token is replaced once it has less than this left.
const REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
/// The largest answer Ferry reads.
const MAX_BODY: usize = 16 << 20;

/// A service principal's credentials (the client-credentials grant).
#[derive(Clone, PartialEq, Eq)]
pub struct ServicePrincipal {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ServicePrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePrincipal")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ServicePrincipal {
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`; `Ok(None)` when none
    /// is set, an error naming the missing ones when only some are.
    pub fn from_environment() -> std::result::Result<Option<ServicePrincipal>, String> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let vars = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"];
        let vals: Vec<Option<String>> = vars.iter().map(|k| get(k)).collect();
        match vals.as_slice() {
            [Some(t), Some(c), Some(s)] => Ok(Some(ServicePrincipal {
                tenant_id: t.clone(),
                client_id: c.clone(),
                client_secret: s.clone(),
            })),
            [None, None, None] => Ok(None),
            _ => Err(format!(
                "{} set but {} not",
                vars.iter()
                    .zip(&vals)
                    .filter(|(_, v)| v.is_some())
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", "),
                vars.iter()
                    .zip(&vals)
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

fn http_client() -> std::result::Result<Client<Https, Full<Bytes>>, String> {
    static CLIENT: OnceLock<std::result::Result<Client<Https, Full<Bytes>>, String>> =
        OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let builder = match hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(provider.clone())
            {
                Ok(b) => b,
                Err(e) => {
                    // No system roots: plain-HTTP (loopback) endpoints still work, and an
                    // https one says why it cannot be verified.
                    tracing::warn!("no system certificate roots for Azure ({e})");
                    let tls = rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .map_err(|e| e.to_string())?
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth();
                    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
                }
            };
            let https = builder.https_or_http().enable_http1().build();
            Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(https))
        })
        .clone()
}

/// One HTTP exchange: status, headers, body.
async fn exchange(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes)> {
    let unreachable = |detail: String| AksError::Unreachable {
        url: url.split('?').next().unwrap_or(url).to_string(),
        detail,
    };
    if !(url.starts_with("https://") || is_loopback_http(url)) {
        return Err(unreachable(
            "Azure endpoints must use https (plain http is allowed for 127.0.0.1 and localhost only)"
                .into(),
        ));
    }
    let client = http_client().map_err(&unreachable)?;
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| unreachable(e.to_string()))?;
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, client.request(req))
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(format!("{e:?}")))?;
    let (parts, body) = resp.into_parts();
    let bytes = tokio::time::timeout(
        REQUEST_TIMEOUT,
        http_body_util::Limited::new(body, MAX_BODY).collect(),
    )
    .await
    .map_err(|_| unreachable("the answer stopped arriving".into()))?
    .map_err(|e| unreachable(e.to_string()))?
    .to_bytes();
    Ok((parts.status, parts.headers, bytes))
}

fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// `Retry-After` in seconds (Azure sends seconds), capped.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: u64 = h
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// `(code, message)` of an Azure error body (`{"error": {"code", "message"}}`, or an
/// OAuth2 `{"error", "error_description"}`).
fn azure_error(body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(e) = v["error"].as_object() {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default();
        return (s("code").to_string(), s("message").to_string());
    }
    if let Some(code) = v["error"].as_str() {
        return (
            code.to_string(),
            v["error_description"].as_str().unwrap_or_default().into(),
        );
    }
    (
        String::new(),
        String::from_utf8_lossy(body).chars().take(300).collect(),
    )
}

/// Where an ARM token comes from.
#[derive(Debug, Clone)]
enum Credential {
    Principal(ServicePrincipal),
    AzureCli,
}

fn tokens() -> &'static tokio::sync::Mutex<HashMap<String, (String, SystemTime)>> {
    static TOKENS: OnceLock<tokio::sync::Mutex<HashMap<String, (String, SystemTime)>>> =
        OnceLock::new();
    TOKENS.get_or_init(Default::default)
}

/// An ARM client for one subscription.
#[derive(Debug, Clone)]
pub struct Arm {
    sub: AzureSubscription,
    credential: Credential,
}

impl Arm {
    /// The client, with the subscription's credentials: its fixed service principal,
    /// else the environment's, else the Azure CLI's login.
    pub fn new(sub: &AzureSubscription) -> Result<Arm> {
        let credential = match &sub.service_principal {
            Some(p) => Credential::Principal(p.clone()),
            None => match ServicePrincipal::from_environment() {
                Ok(Some(p)) => Credential::Principal(p),
                Ok(None) => Credential::AzureCli,
                Err(detail) => {
                    return Err(AksError::NoCredentials {
                        subscription: sub.label(),
                        detail,
                    });
                }
            },
        };
        Ok(Arm {
            sub: sub.clone(),
            credential,
        })
    }

    fn cache_key(&self) -> String {
        match &self.credential {
            Credential::Principal(p) => format!(
                "sp|{}|{}|{}|{}",
                self.sub.authority(),
                p.tenant_id,
                p.client_id,
                blake3::hash(p.client_secret.as_bytes()).to_hex()
            ),
            Credential::AzureCli => format!("cli|{}", self.sub.id),
        }
    }

    /// A bearer token for ARM: the cached one while it has 5 minutes left, else a new
    /// one.
    pub async fn token(&self) -> Result<String> {
        let key = self.cache_key();
        let mut cache = tokens().lock().await;
        if let Some((t, expires)) = cache.get(&key)
            && expires
                .duration_since(SystemTime::now())
                .is_ok_and(|left| left > REFRESH_BEFORE)
        {
            return Ok(t.clone());
        }
        let (token, lifetime) = match &self.credential {
            Credential::Principal(p) => self.principal_token(p).await?,
            Credential::AzureCli => self.cli_token().await?,
        };
        cache.insert(key, (token.clone(), SystemTime::now() + lifetime));
        tracing::debug!(subscription = %self.sub.label(), "new Azure token");
        Ok(token)
    }

    async fn forget_token(&self) {
        tokens().lock().await.remove(&self.cache_key());
    }

    async fn principal_token(&self, p: &ServicePrincipal) -> Result<(String, Duration)> {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.sub.authority(),
            form_encode(&p.tenant_id)
        );
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            form_encode(&p.client_id),
            form_encode(&p.client_secret),
            form_encode(SCOPE)
        );
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let (status, headers, body) = exchange(
                Method::POST,
                &url,
                &[(
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                )],
                Bytes::from(form.clone()),
            )
            .await?;
            if status.is_success() {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let token = v["access_token"]
                    .as_str()
                    .ok_or_else(|| AksError::Credentials {
                        subscription: self.sub.label(),
                        detail: "the token endpoint returned no access_token".into(),
                    })?;
                let secs = v["expires_in"]
                    .as_u64()
                    .or_else(|| v["expires_in"].as_str().and_then(|s| s.parse().ok()))
                    .unwrap_or(3600);
                return Ok((token.to_string(), Duration::from_secs(secs)));
            }
            let retryable = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
            if retryable && attempt < ATTEMPTS {
                tokio::time::sleep(retry_after(&headers).unwrap_or(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
            let (code, message) = azure_error(&body);
            return Err(AksError::Credentials {
                subscription: self.sub.label(),
                detail: format!("{code}: {message}"),
            });
        }
        Err(AksError::Throttled {
            subscription: self.sub.label(),
            detail: "the token endpoint".into(),
        })
    }

    async fn cli_token(&self) -> Result<(String, Duration)> {
        let out = tokio::process::Command::new("az")
            .args([
                "account",
                "get-access-token",
                "--resource",
                "https://management.azure.com/",
                "--subscription",
                &self.sub.id,
                "-o",
                "json",
            ])
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .map_err(|_| AksError::NoCredentials {
                subscription: self.sub.label(),
                detail: "`az account get-access-token` did not answer within 60 s".into(),
            })?
            .map_err(|e| AksError::NoCredentials {
                subscription: self.sub.label(),
                detail: if e.kind() == std::io::ErrorKind::NotFound {
                    "no AZURE_CLIENT_ID/AZURE_CLIENT_SECRET in the environment and the Azure CLI (`az`) is not installed".into()
                } else {
                    format!("cannot run the Azure CLI: {e}")
                },
            })?;
        if !out.status.success() {
            return Err(AksError::NoCredentials {
                subscription: self.sub.label(),
                // The message ends a sentence of Ferry's own.
                detail: format!(
                    "`az account get-access-token` failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .trim()
                        .trim_end_matches('.')
                ),
            });
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let token = v["accessToken"]
            .as_str()
            .ok_or_else(|| AksError::NoCredentials {
                subscription: self.sub.label(),
                detail: "`az account get-access-token` printed no accessToken".into(),
            })?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let lifetime = v["expires_on"]
            .as_u64()
            .or_else(|| v["expires_on"].as_str().and_then(|s| s.parse().ok()))
            .map(|t| Duration::from_secs(t.saturating_sub(now)))
            .unwrap_or(REFRESH_BEFORE * 2);
        Ok((token.to_string(), lifetime))
    }

    /// A request to ARM with a token, retried on 429/503 (honouring `Retry-After`) and
    /// once with a new token on 401. Returns the status, headers and JSON body of a
    /// success; an error sorted by cause otherwise.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(StatusCode, HeaderMap, Value)> {
        let payload = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).unwrap_or_default()),
            None => Bytes::new(),
        };
        let mut delay = Duration::from_millis(200);
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.token().await?;
            let mut headers = vec![("authorization", format!("Bearer {token}"))];
            if body.is_some() {
                headers.push(("content-type", "application/json".into()));
            }
            let (status, h, bytes) =
                exchange(method.clone(), url, &headers, payload.clone()).await?;
            if status.is_success() {
                let v = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
                };
                return Ok((status, h, v));
            }
            let (code, message) = azure_error(&bytes);
            let detail = if code.is_empty() {
                message.clone()
            } else {
                format!("{code}: {message}")
            };
            let sub = self.sub.label();
            match status.as_u16() {
                429 | 503 if attempt < ATTEMPTS => {
                    let pause = retry_after(&h).unwrap_or(delay);
                    tracing::debug!(%url, ?pause, "ARM throttled: retrying");
                    tokio::time::sleep(pause).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                401 if !renewed => {
                    renewed = true;
                    self.forget_token().await;
                }
                401 => {
                    self.forget_token().await;
                    return Err(AksError::Credentials {
                        subscription: sub,
                        detail,
                    });
                }
                403 => {
                    return Err(AksError::NoAccess {
                        subscription: sub,
                        detail,
                    });
                }
                404 if code == "SubscriptionNotFound" || code == "InvalidSubscriptionId" => {
                    return Err(AksError::SubscriptionNotFound {
                        subscription: sub,
                        detail,
                    });
                }
                404 => {
                    return Err(AksError::NotFound {
                        subscription: sub,
                        what: what
                            .trim_start_matches("cannot read ")
                            .trim_start_matches("cannot get the credentials of ")
                            .to_string(),
                        detail,
                    });
                }
                429 | 503 => {
                    return Err(AksError::Throttled {
                        subscription: sub,
                        detail,
                    });
                }
                s => {
                    return Err(AksError::Api {
                        subscription: sub,
                        what: what.into(),
                        status: s,
                        detail,
                    });
                }
            }
        }
    }

    /// [`Arm::send`] returning the JSON body only.
    pub async fn send_json(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<(StatusCode, Value)> {
        let (s, _, v) = self.send(method, url, body, what).await?;
        Ok((s, v))
    }

    pub async fn get_json(&self, url: &str, what: &str) -> Result<Value> {
        Ok(self.send(Method::GET, url, None, what).await?.2)
    }

    pub fn subscription(&self) -> &AzureSubscription {
        &self.sub
    }
}

/// Form/query encoding (RFC 3986 unreserved kept).
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every item of a paged ARM list: `value` of each page, following `nextLink` until a
/// page has none. A `nextLink` seen before ends the walk (a server looping on itself).
pub async fn paged<F, Fut>(first: String, mut get: F) -> Result<Vec<Value>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Value>>,
{
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        if !seen.insert(url.clone()) {
            tracing::warn!(%url, "ARM paging returned a page twice: stopping");
            break;
        }
        let page = get(url).await?;
        if let Some(items) = page["value"].as_array() {
            out.extend(items.iter().cloned());
        }
        next = page["nextLink"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
    }
    Ok(out)
}

/// One look at a long-running operation.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStatus {
    /// `InProgress`, `Succeeded`, `Failed`, `Canceled` (or a provisioning state).
    pub status: String,
    /// The error of a failed operation.
    pub error: Option<String>,
    /// How long the server asked to wait before the next look.
    pub retry_after: Option<Duration>,
}

/// Polls a long-running operation until it ends: `Ok(())` when it succeeded, `Err`
/// with the reason when it failed, was canceled or took longer than `limit`. Each new
/// status goes out as a [`CreateEvent::Status`] about `what`; the pause between looks
/// is the server's `Retry-After`, else `poll` doubling up to `max_poll`.
pub async fn poll_operation<F, Fut>(
    what: &str,
    mut look: F,
    poll: Duration,
    max_poll: Duration,
    limit: Duration,
    events: &(dyn Fn(CreateEvent) + Send + Sync),
) -> std::result::Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<OperationStatus>>,
{
    let started = Instant::now();
    let mut pause = poll;
    let mut last = String::new();
    loop {
        let s = look().await.map_err(|e| e.to_string())?;
        if s.status != last {
            events(CreateEvent::Status {
                what: what.into(),
                status: s.status.clone(),
            });
            last = s.status.clone();
        }
        match s.status.to_ascii_lowercase().as_str() {
            "succeeded" => {
                events(CreateEvent::Ready(what.into()));
                return Ok(());
            }
            "failed" | "canceled" | "cancelled" => {
                return Err(format!(
                    "the operation ended {}{}",
                    s.status,
                    s.error.map(|e| format!(": {e}")).unwrap_or_default()
                ));
            }
            _ => {}
        }
        if started.elapsed() > limit {
            return Err(format!("still {} after {} s", s.status, limit.as_secs()));
        }
        tokio::time::sleep(s.retry_after.unwrap_or(pause).min(max_poll.max(poll))).await;
        pause = (pause * 2).min(max_poll);
    }
}

/// The status of an `Azure-AsyncOperation` document (`{"status", "error"}`).
pub fn async_operation_status(v: &Value, retry: Option<Duration>) -> OperationStatus {
    let error = v["error"].as_object().map(|e| {
        format!(
            "{}: {}",
            e.get("code").and_then(Value::as_str).unwrap_or_default(),
            e.get("message").and_then(Value::as_str).unwrap_or_default()
        )
    });
    OperationStatus {
        status: v["status"].as_str().unwrap_or("InProgress").to_string(),
        error,
        retry_after: retry,
    }
}

impl Arm {
    /// One look at a long-running operation: its `Azure-AsyncOperation` URL (a status
    /// document), else its `Location` URL (202 while running, 200/204 when done).
    pub async fn operation_status(
        &self,
        async_op: Option<&str>,
        location: Option<&str>,
        what: &str,
    ) -> Result<OperationStatus> {
        if let Some(url) = async_op {
            let (_, h, v) = self.send(Method::GET, url, None, what).await?;
            return Ok(async_operation_status(&v, retry_after(&h)));
        }
        if let Some(url) = location {
            let (s, h, _) = self.send(Method::GET, url, None, what).await?;
            let status = if s == StatusCode::ACCEPTED {
                "InProgress"
            } else {
                "Succeeded"
            };
            return Ok(OperationStatus {
                status: status.into(),
                error: None,
                retry_after: retry_after(&h),
            });
        }
        Ok(OperationStatus {
            status: "Succeeded".into(),
            error: None,
            retry_after: None,
        })
    }
}

/// The `Azure-AsyncOperation` and `Location` headers of an answer.
pub fn operation_urls(h: &HeaderMap) -> (Option<String>, Option<String>) {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    (get("azure-asyncoperation"), get("location"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    #[tokio::test]
    async fn paging_follows_next_links_to_the_end() {
        let pages: HashMap<String, Value> = [
            ("p1".to_string(), json!({"value": [1, 2], "nextLink": "p2"})),
            ("p2".to_string(), json!({"value": [], "nextLink": "p3"})),
            ("p3".to_string(), json!({"value": [3]})),
        ]
        .into();
        let asked = Mutex::new(Vec::new());
        let got = paged("p1".into(), |u| {
            asked.lock().unwrap().push(u.clone());
            let page = pages.get(&u).cloned();
            async move { Ok(page.unwrap_or(Value::Null)) }
        })
        .await
        .unwrap();
        assert_eq!(got, [json!(1), json!(2), json!(3)]);
        assert_eq!(*asked.lock().unwrap(), ["p1", "p2", "p3"]);

        // A server that points back at a page it served ends the walk.
        let looping = paged("a".into(), |_| async {
            Ok(json!({"value": [7], "nextLink": "a"}))
        })
        .await
        .unwrap();
        assert_eq!(looping, [json!(7)]);
        // An error on a later page is the walk's error.
        let e = paged("a".into(), |u| async move {
            if u == "a" {
                Ok(json!({"value": [1], "nextLink": "b"}))
            } else {
                Err(AksError::Unreachable {
                    url: u,
                    detail: "page b broke".into(),
                })
            }
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("page b broke"));
    }

    fn script(
        states: &[(&str, Option<&str>)],
    ) -> Mutex<std::collections::VecDeque<OperationStatus>> {
        Mutex::new(
            states
                .iter()
                .map(|(s, e)| OperationStatus {
                    status: s.to_string(),
                    error: e.map(str::to_string),
                    retry_after: None,
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn operations_are_polled_until_they_end() {
        let events = Mutex::new(Vec::new());
        let sink = |e: CreateEvent| events.lock().unwrap().push(e);
        let s = script(&[
            ("InProgress", None),
            ("InProgress", None),
            ("Succeeded", None),
        ]);
        let looks = Mutex::new(0);
        poll_operation(
            "cluster c",
            || {
                *looks.lock().unwrap() += 1;
                let next = s.lock().unwrap().pop_front();
                async move { Ok(next.unwrap()) }
            },
            Duration::from_millis(1),
            Duration::from_millis(4),
            Duration::from_secs(60),
            &sink,
        )
        .await
        .unwrap();
        assert_eq!(*looks.lock().unwrap(), 3);
        assert_eq!(
            *events.lock().unwrap(),
            [
                CreateEvent::Status {
                    what: "cluster c".into(),
                    status: "InProgress".into()
                },
                CreateEvent::Status {
                    what: "cluster c".into(),
                    status: "Succeeded".into()
                },
                CreateEvent::Ready("cluster c".into()),
            ]
        );

        let s = script(&[
            ("InProgress", None),
            ("Failed", Some("SkuNotAvailable: no")),
        ]);
        let e = poll_operation(
            "cluster c",
            || {
                let next = s.lock().unwrap().pop_front();
                async move { Ok(next.unwrap()) }
            },
            Duration::from_millis(1),
            Duration::from_millis(4),
            Duration::from_secs(60),
            &|_| {},
        )
        .await
        .unwrap_err();
        assert!(e.contains("Failed: SkuNotAvailable: no"), "{e}");

        // Never ending: the limit ends the wait with the last status.
        let e = poll_operation(
            "cluster c",
            || async {
                Ok(OperationStatus {
                    status: "Updating".into(),
                    error: None,
                    retry_after: Some(Duration::from_millis(1)),
                })
            },
            Duration::from_millis(1),
            Duration::from_millis(2),
            Duration::ZERO,
            &|_| {},
        )
        .await
        .unwrap_err();
        assert!(e.contains("still Updating"), "{e}");

        // A failed look is the wait's error.
        let e = poll_operation(
            "cluster c",
            || async {
                Err(AksError::Unreachable {
                    url: "op".into(),
                    detail: "gone".into(),
                })
            },
            Duration::from_millis(1),
            Duration::from_millis(2),
            Duration::from_secs(1),
            &|_| {},
        )
        .await
        .unwrap_err();
        assert!(e.contains("gone"), "{e}");
    }

    #[test]
    fn status_documents_and_errors_are_read() {
        let s = async_operation_status(
            &json!({"status": "Failed", "error": {"code": "X", "message": "y"}}),
            None,
        );
        assert_eq!(s.error.as_deref(), Some("X: y"));
        assert_eq!(
            azure_error(br#"{"error":"invalid_client","error_description":"AADSTS7000215"}"#),
            ("invalid_client".into(), "AADSTS7000215".into())
        );
        assert!(is_loopback_http("http://127.0.0.1:4599/x"));
        assert!(!is_loopback_http("http://example.com/x"));
    }
}

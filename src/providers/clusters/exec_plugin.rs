//! Kubeconfig exec credential plugins (`users[].user.exec`: `aws eks get-token`,
//! `kubelogin`, `gke-gcloud-auth-plugin`, …), run by Ferry rather than by kube-rs.
//!
//! kube-rs 5 runs a plugin with `std::process::Command::output()` inside
//! `Client::try_from` (on the async worker, twice: once for a client certificate, once
//! for a token) and again, on a blocking thread, when the token expires. Nothing bounds
//! it: a plugin that never returns holds the client (and, on the worker thread, every
//! other cluster's probe) forever, and one that prints gigabytes is read into memory
//! whole. So Ferry takes the `exec` out of the kubeconfig before kube-rs sees it and runs
//! the plugin here: asynchronously, stdin closed, in its own process group, killed after
//! [`timeout`] (default [`DEFAULT_TIMEOUT`], `FERRY_PLUGIN_TIMEOUT` seconds) or as soon as
//! it prints more than [`MAX_OUTPUT`]. A token goes to the client through
//! [`PluginAuthLayer`], which runs the plugin again before the token expires (60 s ahead,
//! as client-go does); a client certificate goes into the client's TLS configuration.
//!
//! Must not: print, or read the terminal (plugins that need one are refused, see
//! [`PluginError::Interactive`]).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use kube::config::{ExecConfig, ExecInteractiveMode};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// How long a plugin may run when `FERRY_PLUGIN_TIMEOUT` does not say otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The most a plugin may print on stdout (an ExecCredential is a few KiB).
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// How much of a plugin's stderr is kept for an error message (the rest is read and
/// dropped, so a chatty plugin never blocks on a full pipe).
const KEPT_STDERR: usize = 4096;

/// A token is replaced this long before it expires.
const REFRESH_AHEAD: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The environment variable that sets the plugin timeout, in seconds.
pub const TIMEOUT_VAR: &str = "FERRY_PLUGIN_TIMEOUT";

/// The plugin timeout: `FERRY_PLUGIN_TIMEOUT` (seconds, fractions allowed) when it is a
/// positive number, else [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    std::env::var(TIMEOUT_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Seconds in words: `20 s`, `1.5 s`, `250 ms`.
pub fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 || d >= Duration::from_secs(10) {
        format!("{} s", d.as_secs_f64().round())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// What went wrong with a credential plugin. Every message names the plugin and the
/// context, and says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    #[error(
        "the credential plugin `{command}` of context {context:?} did not finish within {} and was stopped: run it yourself to see what it waits for (a login, a prompt, the network), e.g. `kubectl --context {context} get namespaces`; if it is only slow, raise {TIMEOUT_VAR} (seconds)",
        seconds(*.after)
    )]
    TimedOut {
        command: String,
        context: String,
        after: Duration,
    },
    #[error(
        "the credential plugin `{command}` of context {context:?} printed more than {} MiB (the limit; a credential is a few KiB) and was stopped: check that the kubeconfig's `exec` runs the right program",
        .limit / (1024 * 1024)
    )]
    TooMuchOutput {
        command: String,
        context: String,
        limit: usize,
    },
    #[error(
        "the credential plugin `{command}` of context {context:?} is not installed (not found on PATH){}",
        .hint.as_deref().map(|h| format!(": {}", h.trim())).unwrap_or_else(|| ": install it, or fix `users[].user.exec.command` in the kubeconfig".into())
    )]
    NotFound {
        command: String,
        context: String,
        hint: Option<String>,
    },
    #[error(
        "the credential plugin `{command}` of context {context:?} cannot be started: {detail}. Check `users[].user.exec` in the kubeconfig"
    )]
    Start {
        command: String,
        context: String,
        detail: String,
    },
    #[error(
        "the credential plugin `{command}` of context {context:?} failed ({status}){}: run it yourself to see why (often: log in again)",
        if .stderr.is_empty() { String::new() } else { format!(": {}", .stderr) }
    )]
    Failed {
        command: String,
        context: String,
        status: String,
        stderr: String,
    },
    #[error(
        "the credential plugin `{command}` of context {context:?} answered something that is not an ExecCredential ({detail}): check that the kubeconfig's `exec` runs the right program and `apiVersion`"
    )]
    BadOutput {
        command: String,
        context: String,
        detail: String,
    },
    #[error(
        "the credential plugin `{command}` of context {context:?} needs a terminal (interactiveMode: Always), which Ferry does not give plugins: log in once in a terminal (e.g. `kubectl --context {context} get namespaces`) so the plugin has a cached credential, or set interactiveMode: IfAvailable"
    )]
    Interactive { command: String, context: String },
    #[error(
        "the kubeconfig user of context {context:?} has an `exec` section without a `command`: fix `users[].user.exec` in the kubeconfig"
    )]
    NoCommand { context: String },
}

/// What a plugin handed out.
#[derive(Clone)]
pub enum Credential {
    /// A bearer token, valid until `expires` (None: for as long as the client lives).
    Token {
        token: String,
        expires: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// A client certificate and key, PEM.
    Certificate { cert_pem: String, key_pem: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token { expires, .. } => f
                .debug_struct("Token")
                .field("expires", expires)
                .finish_non_exhaustive(),
            Credential::Certificate { .. } => f.debug_struct("Certificate").finish_non_exhaustive(),
        }
    }
}

/// One context's plugin, as its kubeconfig describes it.
#[derive(Debug, Clone)]
pub struct ExecPlugin {
    exec: ExecConfig,
    context: String,
}

/// The parts of an ExecCredential Ferry reads.
#[derive(Deserialize)]
struct ExecCredentialOut {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    status: Option<StatusOut>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusOut {
    #[serde(default)]
    expiration_timestamp: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key_data: Option<String>,
}

impl ExecPlugin {
    /// The plugin of `context` (its `exec` section, with the cluster information kube-rs
    /// filled in when `provideClusterInfo` is set).
    pub fn new(exec: ExecConfig, context: &str) -> ExecPlugin {
        ExecPlugin {
            exec,
            context: context.to_string(),
        }
    }

    /// The command as the user wrote it, with its arguments (for messages).
    pub fn command_line(&self) -> String {
        let mut s = self.exec.command.clone().unwrap_or_default();
        for a in self.exec.args.iter().flatten() {
            s.push(' ');
            s.push_str(a);
        }
        if s.chars().count() > 160 {
            s = s.chars().take(160).collect::<String>() + "…";
        }
        s
    }

    pub fn context(&self) -> &str {
        &self.context
    }

    /// Runs the plugin once, bounded in time ([`timeout`]) and output ([`MAX_OUTPUT`]).
    pub async fn run(&self) -> Result<Credential, PluginError> {
        self.run_within(timeout()).await
    }

    /// [`ExecPlugin::run`] with the given time limit.
    pub async fn run_within(&self, limit: Duration) -> Result<Credential, PluginError> {
        let command = self.command_line();
        let context = self.context.clone();
        let Some(program) = self.exec.command.clone().filter(|c| !c.is_empty()) else {
            return Err(PluginError::NoCommand { context });
        };
        if self.exec.interactive_mode == Some(ExecInteractiveMode::Always) {
            return Err(PluginError::Interactive { command, context });
        }
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(self.exec.args.iter().flatten());
        for e in self.exec.env.iter().flatten() {
            if let (Some(name), Some(value)) = (e.get("name"), e.get("value")) {
                cmd.env(name, value);
            }
        }
        for name in self.exec.drop_env.iter().flatten() {
            cmd.env_remove(name);
        }
        let mut spec = serde_json::json!({ "interactive": false });
        if self.exec.provide_cluster_info
            && let Some(cluster) = &self.exec.cluster
        {
            spec["cluster"] = serde_json::to_value(cluster).unwrap_or_default();
        }
        let info = serde_json::json!({
            "apiVersion": self.exec.api_version,
            "kind": "ExecCredential",
            "spec": spec,
        });
        cmd.env("KUBERNETES_EXEC_INFO", info.to_string());
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PluginError::NotFound {
                    command: command.clone(),
                    context: context.clone(),
                    hint: self.exec.install_hint.clone(),
                }
            } else {
                PluginError::Start {
                    command: command.clone(),
                    context: context.clone(),
                    detail: e.to_string(),
                }
            }
        })?;
        let pid = child.id();
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group(pid);
            return Err(PluginError::Start {
                command,
                context,
                detail: "its output could not be captured".into(),
            });
        };
        let work = async {
            let (out, err) =
                tokio::try_join!(read_capped(stdout, MAX_OUTPUT), read_stderr(stderr))?;
            let status = child.wait().await.map_err(ReadError::Io)?;
            Ok::<_, ReadError>((out, err, status))
        };
        let result = tokio::time::timeout(limit, work).await;
        let (out, err, status) = match result {
            Err(_) => {
                kill_group(pid);
                tracing::warn!(%command, %context, after = ?limit, "credential plugin timed out");
                return Err(PluginError::TimedOut {
                    command,
                    context,
                    after: limit,
                });
            }
            Ok(Err(ReadError::TooLong)) => {
                kill_group(pid);
                tracing::warn!(%command, %context, "credential plugin printed too much");
                return Err(PluginError::TooMuchOutput {
                    command,
                    context,
                    limit: MAX_OUTPUT,
                });
            }
            Ok(Err(ReadError::Io(e))) => {
                kill_group(pid);
                return Err(PluginError::Start {
                    command,
                    context,
                    detail: e.to_string(),
                });
            }
            Ok(Ok(r)) => r,
        };
        // The plugin has exited; anything it left running in its group goes too.
        kill_group(pid);
        if !status.success() {
            return Err(PluginError::Failed {
                command,
                context,
                status: status.to_string(),
                stderr: err,
            });
        }
        let bad = |detail: String| PluginError::BadOutput {
            command: command.clone(),
            context: context.clone(),
            detail,
        };
        // Plugins print JSON; client-go reads it with a YAML-tolerant decoder, so some
        // print YAML (a superset of JSON).
        let parsed: ExecCredentialOut = match serde_json::from_slice(&out) {
            Ok(p) => p,
            Err(json_err) => {
                serde_saphyr::from_slice(&out).map_err(|_| bad(format!("not JSON: {json_err}")))?
            }
        };
        if let Some(kind) = &parsed.kind
            && kind != "ExecCredential"
        {
            return Err(bad(format!("its kind is {kind:?}")));
        }
        let status = parsed
            .status
            .ok_or_else(|| bad("it has no `status`".into()))?;
        let expires = match &status.expiration_timestamp {
            Some(t) => Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| bad(format!("expirationTimestamp {t:?}: {e}")))?
                    .with_timezone(&chrono::Utc),
            ),
            None => None,
        };
        match (
            status.token.filter(|t| !t.is_empty()),
            status.client_certificate_data,
            status.client_key_data,
        ) {
            (_, Some(cert_pem), Some(key_pem)) => Ok(Credential::Certificate { cert_pem, key_pem }),
            (Some(token), _, _) => Ok(Credential::Token { token, expires }),
            _ => Err(bad(
                "its status holds neither a token nor a client certificate and key".into(),
            )),
        }
    }
}

/// Kills the plugin's process group (it was started as the leader of its own group), so
/// nothing it started outlives it.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

enum ReadError {
    TooLong,
    Io(std::io::Error),
}

/// Reads `r` to its end, failing as soon as it holds more than `cap` bytes.
async fn read_capped(r: impl AsyncRead + Unpin, cap: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit)
        .read_to_end(&mut out)
        .await
        .map_err(ReadError::Io)?;
    if out.len() > cap {
        return Err(ReadError::TooLong);
    }
    Ok(out)
}

/// Reads stderr to its end, keeping the first [`KEPT_STDERR`] bytes (as text, one line).
async fn read_stderr(mut r: impl AsyncRead + Unpin) -> Result<String, ReadError> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = r.read(&mut buf).await.map_err(ReadError::Io)?;
        if n == 0 {
            break;
        }
        let room = KEPT_STDERR.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    let text = String::from_utf8_lossy(&kept);
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A client certificate credential in the form kube-rs's `AuthInfo` takes it (base64 of
/// the PEM).
pub fn base64_pem(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// Tokens from one plugin, run again before the current one expires. Shared by every
/// request of a client.
#[derive(Clone)]
pub struct PluginTokens {
    inner: Arc<TokensInner>,
}

struct TokensInner {
    plugin: ExecPlugin,
    current: std::sync::Mutex<(String, Option<chrono::DateTime<chrono::Utc>>)>,
    /// Held while the plugin runs, so concurrent requests run it once.
    refreshing: tokio::sync::Mutex<()>,
    runs: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PluginTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginTokens")
            .field("plugin", &self.inner.plugin.command_line())
            .field("context", &self.inner.plugin.context)
            .finish_non_exhaustive()
    }
}

impl PluginTokens {
    /// Starts from a token the plugin already handed out.
    pub fn new(
        plugin: ExecPlugin,
        token: String,
        expires: Option<chrono::DateTime<chrono::Utc>>,
    ) -> PluginTokens {
        PluginTokens {
            inner: Arc::new(TokensInner {
                plugin,
                current: std::sync::Mutex::new((token, expires)),
                refreshing: tokio::sync::Mutex::new(()),
                runs: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    /// How many times the plugin has run for this client.
    pub fn runs(&self) -> u64 {
        self.inner.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current token while it is good for more than a minute.
    fn fresh(&self) -> Option<String> {
        let cur = self
            .inner
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let good = cur
            .1
            .is_none_or(|exp| chrono::Utc::now() + REFRESH_AHEAD < exp);
        good.then(|| cur.0.clone())
    }

    /// A token good for more than a minute: the current one, or a new one from the
    /// plugin.
    pub async fn token(&self) -> Result<String, PluginError> {
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let _running = self.inner.refreshing.lock().await;
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let cred = self.inner.plugin.run().await?;
        self.inner
            .runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match cred {
            Credential::Token { token, expires } => {
                tracing::debug!(context = %self.inner.plugin.context, ?expires, "credential plugin renewed the token");
                *self
                    .inner
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    (token.clone(), expires);
                Ok(token)
            }
            Credential::Certificate { .. } => Err(PluginError::BadOutput {
                command: self.inner.plugin.command_line(),
                context: self.inner.plugin.context.clone(),
                detail: "it handed out a token first and a client certificate now; Ferry keeps one kind per connection: start the command again".into(),
            }),
        }
    }
}

/// A tower layer for the kube client: every request carries the plugin's current
/// token, renewed (in `poll_ready`, before the request is sent) from a minute before it
/// expires. A renewal that fails fails that request only (the kube client's buffer
/// would otherwise stop for good): the next request runs the plugin again.
#[derive(Debug, Clone)]
pub struct PluginAuthLayer(pub PluginTokens);

impl<S> tower::Layer<S> for PluginAuthLayer {
    type Service = PluginAuth<S>;

    fn layer(&self, inner: S) -> PluginAuth<S> {
        PluginAuth {
            inner,
            tokens: self.0.clone(),
            header: None,
            renewing: None,
            failed: None,
        }
    }
}

/// The service [`PluginAuthLayer`] makes.
pub struct PluginAuth<S> {
    inner: S,
    tokens: PluginTokens,
    header: Option<http::HeaderValue>,
    renewing: Option<futures::future::BoxFuture<'static, Result<String, PluginError>>>,
    /// Why the last renewal failed: the next call fails with it without being sent.
    failed: Option<tower::BoxError>,
}

impl<S> std::fmt::Debug for PluginAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginAuth")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

fn bearer(token: &str) -> Result<http::HeaderValue, tower::BoxError> {
    let mut v = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        tower::BoxError::from(
            "the credential plugin's token holds characters an HTTP header cannot carry",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl<S, B> tower::Service<http::Request<B>> for PluginAuth<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<tower::BoxError>,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = futures::future::Either<
        futures::future::Ready<Result<S::Response, tower::BoxError>>,
        futures::future::ErrInto<S::Future, tower::BoxError>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), tower::BoxError>> {
        use std::task::Poll;
        if self.failed.is_some() {
            return Poll::Ready(Ok(()));
        }
        if self.renewing.is_none() {
            match self.tokens.fresh() {
                Some(t) => match bearer(&t) {
                    Ok(h) => self.header = Some(h),
                    Err(e) => {
                        self.failed = Some(e);
                        return Poll::Ready(Ok(()));
                    }
                },
                None => {
                    let tokens = self.tokens.clone();
                    self.renewing = Some(Box::pin(async move { tokens.token().await }));
                }
            }
        }
        if let Some(fut) = self.renewing.as_mut() {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    self.renewing = None;
                    match r
                        .map_err(ferry_k8s::cluster::Worded::boxed)
                        .and_then(|t| bearer(&t))
                    {
                        Ok(h) => self.header = Some(h),
                        Err(e) => {
                            self.failed = Some(e);
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        use futures::TryFutureExt as _;
        if let Some(e) = self.failed.take() {
            return futures::future::Either::Left(futures::future::ready(Err(e)));
        }
        if let Some(v) = &self.header {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, v.clone());
        }
        futures::future::Either::Right(self.inner.call(request).err_into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(script: &str) -> ExecPlugin {
        ExecPlugin::new(
            ExecConfig {
                api_version: Some("client.authentication.k8s.io/v1".into()),
                command: Some("sh".into()),
                args: Some(vec!["-c".into(), script.into()]),
                env: None,
                drop_env: None,
                install_hint: None,
                interactive_mode: Some(ExecInteractiveMode::Never),
                provide_cluster_info: false,
                cluster: None,
                other: Default::default(),
            },
            "ctx",
        )
    }

    #[tokio::test]
    async fn tokens_certificates_and_failures() {
        let p = plugin(
            r#"printf '{"kind":"ExecCredential","status":{"token":"abc","expirationTimestamp":"2099-01-01T00:00:00Z"}}'"#,
        );
        match p.run_within(Duration::from_secs(10)).await.unwrap() {
            Credential::Token { token, expires } => {
                assert_eq!(token, "abc");
                assert!(expires.is_some());
            }
            other => panic!("{other:?}"),
        }
        // YAML is read too; and the environment carries KUBERNETES_EXEC_INFO.
        let p = plugin(
            r#"case "$KUBERNETES_EXEC_INFO" in *'"interactive":false'*) echo 'status: {token: y}';; *) echo 'status: {token: n}';; esac"#,
        );
        match p.run_within(Duration::from_secs(10)).await.unwrap() {
            Credential::Token { token, .. } => assert_eq!(token, "y"),
            other => panic!("{other:?}"),
        }
        let e = plugin("echo nope >&2; exit 3")
            .run_within(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PluginError::Failed { stderr, .. } if stderr == "nope"),
            "{e}"
        );
        let e = plugin("echo '{\"status\":{}}'")
            .run_within(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("neither a token"), "{e}");
        let e = plugin("echo '[1,2'")
            .run_within(Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(e, PluginError::BadOutput { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_or_flooding_plugin_is_stopped() {
        let started = std::time::Instant::now();
        let e = plugin("sleep 30")
            .run_within(Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, PluginError::TimedOut { .. }), "{e}");
        assert!(e.to_string().contains("\"ctx\""), "{e}");
        assert!(e.to_string().contains("300 ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let e = plugin("exec yes")
            .run_within(Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(matches!(e, PluginError::TooMuchOutput { .. }), "{e}");
        assert!(e.to_string().contains("more than 1 MiB"), "{e}");
    }

    #[test]
    fn interactive_plugins_and_missing_programs_are_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut p = plugin("true");
        p.exec.interactive_mode = Some(ExecInteractiveMode::Always);
        let e = rt.block_on(p.run()).unwrap_err();
        assert!(matches!(e, PluginError::Interactive { .. }), "{e}");
        let mut p = plugin("true");
        p.exec.command = Some("/nonexistent/ferry-plugin".into());
        p.exec.install_hint = Some("install it with brew".into());
        let e = rt.block_on(p.run()).unwrap_err();
        assert!(e.to_string().contains("install it with brew"), "{e}");
    }

    #[test]
    fn seconds_read_well() {
        assert_eq!(seconds(Duration::from_secs(20)), "20 s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(seconds(Duration::from_millis(5004)), "5.0 s");
        assert_eq!(seconds(Duration::from_millis(250)), "250 ms");
    }
}

//! The kube client Ferry makes from a kubeconfig: the one way a kubeconfig (a context's
//! file, or the one AKS hands out) becomes a client.
//!
//! - Timeouts: [`CONNECT_TIMEOUT`] to connect (TCP and TLS), [`READ_TIMEOUT`] for an
//!   answer.
//! - Credential plugins run in Ferry, bounded (see [`super::exec_plugin`]); their
//!   tokens are renewed before they expire.
//! - Errors name what timed out or refused, after how long, the API server and the
//!   context ([`ApiError`], added by [`ApiErrorsLayer`] to every request), instead of
//!   hyper's "client error (Connect)".

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_k8s::cluster::{Unreached, Worded, classify};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::exec_plugin::{
    self, Credential, ExecPlugin, PluginAuthLayer, PluginError, PluginTokens, seconds,
};

/// How long connecting to a cluster (TCP and TLS) may take before Ferry gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a cluster may take to answer a request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The kubeconfig cannot be used (in words).
    #[error("{0}")]
    Config(String),
}

/// A request that did not reach, or was not answered by, the API server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error(
        "timed out after {} waiting for the API server {server} (context {context:?}) {}",
        seconds(*.after),
        if *.connecting {
            "to accept the connection and complete TLS: check the server address in the kubeconfig and the network path to it (a firewall or proxy that holds connections without passing them on)"
        } else {
            "to answer: it took the request but sent nothing back; check that the cluster is healthy (`kubectl get --raw /readyz`) and the network path to it"
        }
    )]
    TimedOut {
        server: String,
        context: String,
        after: Duration,
        connecting: bool,
    },
    #[error(
        "cannot connect to the API server {server} (context {context:?}): {}. {}",
        cause.sentence(detail),
        capitalized(cause.advice())
    )]
    Connect {
        server: String,
        context: String,
        cause: Unreached,
        detail: String,
    },
}

/// A client for `context` of `kc` (its current context when None), with Ferry's
/// timeouts, a credential plugin run by Ferry, and errors that name the server and the
/// context.
pub async fn client_for(
    kc: Kubeconfig,
    context: Option<String>,
) -> Result<kube::Client, ClientError> {
    let label = context
        .clone()
        .or_else(|| kc.current_context.clone())
        .unwrap_or_default();
    let opts = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    // Loading reads files (CA, certificates) and runs nothing.
    let mut config = kube::Config::from_custom_kubeconfig(kc, &opts)
        .await
        .map_err(|e| ClientError::Config(e.to_string()))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let tokens = match config.auth_info.exec.take() {
        None => None,
        // kube-rs prefers these to a plugin (and would not run it): so does Ferry.
        Some(_)
            if config.auth_info.auth_provider.is_some()
                || config.auth_info.token.is_some()
                || config.auth_info.token_file.is_some()
                || (config.auth_info.username.is_some() && config.auth_info.password.is_some()) =>
        {
            None
        }
        Some(exec) => {
            let plugin = ExecPlugin::new(exec, &label);
            match plugin.run().await? {
                Credential::Certificate { cert_pem, key_pem } => {
                    config.auth_info.client_certificate_data =
                        Some(exec_plugin::base64_pem(&cert_pem));
                    config.auth_info.client_key_data =
                        Some(exec_plugin::base64_pem(&key_pem).into());
                    None
                }
                Credential::Token { token, expires } => {
                    Some(PluginTokens::new(plugin, token, expires))
                }
            }
        }
    };
    // What is left of client construction may still run an `auth-provider` command
    // (kube-rs runs those synchronously): on a blocking thread, bounded.
    let limit = exec_plugin::timeout();
    let built = tokio::time::timeout(
        limit,
        tokio::task::spawn_blocking(move || kube::client::ClientBuilder::try_from(config)),
    )
    .await;
    let builder = match built {
        Err(_) => {
            return Err(ClientError::Config(format!(
                "making a client took longer than {} (an `auth-provider` command in the kubeconfig that does not finish?)",
                seconds(limit)
            )));
        }
        Ok(Err(e)) => return Err(ClientError::Config(e.to_string())),
        Ok(Ok(Err(e))) => return Err(ClientError::Config(e.to_string())),
        Ok(Ok(Ok(b))) => b,
    };
    let errors = ApiErrorsLayer::new(&server, &label);
    Ok(match tokens {
        Some(t) => builder
            .with_layer(&PluginAuthLayer(t))
            .with_layer(&errors)
            .build(),
        None => builder.with_layer(&errors).build(),
    })
}

/// `s` with its first letter upper-case (advice that starts a sentence).
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl ApiError {
    /// Why the server was not reached, in a word or two (`refused`, `timed out`).
    pub fn word(&self) -> &'static str {
        match self {
            ApiError::TimedOut { .. } => Unreached::TimedOut.word(),
            ApiError::Connect { cause, .. } => cause.word(),
        }
    }
}

/// Turns connection failures and timeouts into [`ApiError`]s naming the server and the
/// context (added outermost to every client [`client_for`] makes).
#[derive(Debug, Clone)]
pub struct ApiErrorsLayer {
    server: Arc<str>,
    context: Arc<str>,
}

impl ApiErrorsLayer {
    pub fn new(server: &str, context: &str) -> ApiErrorsLayer {
        ApiErrorsLayer {
            server: server.into(),
            context: context.into(),
        }
    }

    fn name(&self, e: tower::BoxError, after: Duration) -> tower::BoxError {
        let c = classify(&*e);
        if c.cause == Unreached::TimedOut {
            Worded::boxed(ApiError::TimedOut {
                server: self.server.to_string(),
                context: self.context.to_string(),
                after,
                connecting: c.connecting,
            })
        } else if c.connecting || c.cause != Unreached::Other {
            Worded::boxed(ApiError::Connect {
                server: self.server.to_string(),
                context: self.context.to_string(),
                cause: c.cause,
                detail: c.innermost,
            })
        } else {
            e
        }
    }
}

impl<S> tower::Layer<S> for ApiErrorsLayer {
    type Service = ApiErrors<S>;

    fn layer(&self, inner: S) -> ApiErrors<S> {
        ApiErrors {
            inner,
            names: self.clone(),
        }
    }
}

/// The service [`ApiErrorsLayer`] makes.
#[derive(Debug)]
pub struct ApiErrors<S> {
    inner: S,
    names: ApiErrorsLayer,
}

impl<S, B> tower::Service<http::Request<B>> for ApiErrors<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, tower::BoxError>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), tower::BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let fut = self.inner.call(request);
        let names = self.names.clone();
        Box::pin(async move {
            fut.await
                .map_err(|e| names.name(e.into(), started.elapsed()))
        })
    }
}

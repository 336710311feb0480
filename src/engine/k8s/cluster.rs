//! What the engine needs to know about a cluster beyond its objects: its storage
//! classes as restore mapping sees them, and kube-rs errors in words for the user.
//!
//! The client stack that makes a [`kube::Client`] (the providers crate: timeouts that
//! name the server, credential plugins) wraps its errors in [`Worded`], whose message
//! already says what happened and what to do; [`explain`] passes those on as they are
//! and words the rest itself.

use std::fmt;

use k8s_openapi::api::storage::v1::StorageClass;
use serde::Serialize;

/// A storage class as restore mapping needs it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct StorageClassInfo {
    pub name: String,
    pub provisioner: String,
    #[serde(default)]
    pub parameters: std::collections::BTreeMap<String, String>,
    pub default: bool,
    #[serde(default)]
    pub binding_mode: String,
    #[serde(default)]
    pub allow_expansion: bool,
}

impl StorageClassInfo {
    pub fn from_class(sc: &StorageClass) -> StorageClassInfo {
        let annotations = sc.metadata.annotations.clone().unwrap_or_default();
        StorageClassInfo {
            name: sc.metadata.name.clone().unwrap_or_default(),
            provisioner: sc.provisioner.clone(),
            parameters: sc.parameters.clone().unwrap_or_default(),
            default: annotations
                .get("storageclass.kubernetes.io/is-default-class")
                .is_some_and(|v| v == "true"),
            binding_mode: sc
                .volume_binding_mode
                .clone()
                .unwrap_or_else(|| "Immediate".into()),
            allow_expansion: sc.allow_volume_expansion.unwrap_or(false),
        }
    }
}

/// Says why a kube-rs error happened, in words for the user: a timeout or refused
/// connection names the API server and the context (from the client's
/// [`Worded`] errors its layers add), a credential plugin's failure names the plugin.
pub fn explain(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 401 => {
            "the cluster rejected the credentials (401): log in again or renew the token".into()
        }
        kube::Error::Api(s) if s.code == 403 => format!("forbidden: {}", s.message),
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        kube::Error::Service(inner) => match inner.downcast_ref::<Worded>() {
            Some(w) => w.to_string(),
            None => unnamed(&**inner),
        },
        kube::Error::HyperError(h) => unnamed(h),
        other => other.to_string(),
    }
}

/// A transport error of a client that does not name its server.
fn unnamed(e: &(dyn std::error::Error + 'static)) -> String {
    let c = classify(e);
    match (c.cause, c.connecting) {
        (Unreached::TimedOut, true) => {
            format!("timed out connecting to the API server ({})", c.innermost)
        }
        (Unreached::TimedOut, false) => format!(
            "timed out waiting for the API server to answer ({})",
            c.innermost
        ),
        (cause, _) => format!("{}: {}", cause.sentence(&c.innermost), cause.advice()),
    }
}

/// Why an API server could not be reached, as far as the error tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreached {
    /// Nothing accepts connections at the address (the port is closed).
    Refused,
    /// The server's name does not resolve.
    NoSuchHost,
    /// The network has no route to the address.
    NoRoute,
    /// The TLS handshake failed (a certificate the kubeconfig does not trust, or
    /// something that does not speak TLS at the address).
    Tls,
    /// The connection was closed or reset before an answer.
    Closed,
    /// Connecting or answering took too long.
    TimedOut,
    /// Something else: the innermost cause says what.
    Other,
}

impl Unreached {
    /// The cause in a word or two, for a status column (`refused`, `TLS failed`).
    pub fn word(self) -> &'static str {
        match self {
            Unreached::Refused => "refused",
            Unreached::NoSuchHost => "no such host",
            Unreached::NoRoute => "no route",
            Unreached::Tls => "TLS failed",
            Unreached::Closed => "closed",
            Unreached::TimedOut => "timed out",
            Unreached::Other => "unreachable",
        }
    }

    /// What happened, with the innermost cause (`detail`).
    pub fn sentence(self, detail: &str) -> String {
        match self {
            Unreached::Refused => {
                format!("the connection was refused: nothing listens at that address ({detail})")
            }
            Unreached::NoSuchHost => format!("the server's name does not resolve ({detail})"),
            Unreached::NoRoute => format!("there is no route to the server ({detail})"),
            Unreached::Tls => format!("the TLS handshake failed ({detail})"),
            Unreached::Closed => {
                format!("the server closed the connection without answering ({detail})")
            }
            Unreached::TimedOut => format!("it timed out ({detail})"),
            Unreached::Other => format!("cannot connect ({detail})"),
        }
    }

    /// What to do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Unreached::Refused => {
                "check that the cluster is running and that the kubeconfig's server address and port are right"
            }
            Unreached::NoSuchHost => {
                "check the server address in the kubeconfig, and the VPN or DNS that resolves it"
            }
            Unreached::NoRoute => "check the network path to the server (VPN, proxy, firewall)",
            Unreached::Tls => {
                "check that the kubeconfig's certificate-authority data belongs to this server, and that the address is the API server's"
            }
            Unreached::Closed => {
                "check that the address is the API server's and that no proxy in between drops the connection"
            }
            Unreached::TimedOut => "check that the cluster is healthy and the network path to it",
            Unreached::Other => {
                "check that the cluster is running and the server address in the kubeconfig"
            }
        }
    }
}

/// What [`classify`] finds in a transport error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// Why the server was not reached.
    pub cause: Unreached,
    /// It failed while connecting (before a request was sent).
    pub connecting: bool,
    /// The innermost cause, in its own words.
    pub innermost: String,
}

/// Reads the chain of causes of a transport error: whether it happened while
/// connecting, why, and its innermost cause in words.
pub fn classify(e: &(dyn std::error::Error + 'static)) -> Classified {
    use std::io::ErrorKind as K;
    let mut connecting = false;
    let mut cause = Unreached::Other;
    let mut innermost = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    // The first definite cause wins, except that a timeout outranks all.
    let pick = |c: Unreached, cause: &mut Unreached| {
        if *cause == Unreached::Other || c == Unreached::TimedOut {
            *cause = c;
        }
    };
    while let Some(x) = cur {
        if let Some(l) = x.downcast_ref::<hyper_util::client::legacy::Error>()
            && l.is_connect()
        {
            connecting = true;
        }
        let text = x.to_string();
        if text.starts_with("dns error") || text.contains("failed to lookup address") {
            pick(Unreached::NoSuchHost, &mut cause);
        }
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            match io.kind() {
                K::TimedOut => pick(Unreached::TimedOut, &mut cause),
                K::ConnectionRefused => pick(Unreached::Refused, &mut cause),
                K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
                    pick(Unreached::NoRoute, &mut cause)
                }
                // rustls's errors reach the client as InvalidData.
                K::InvalidData => pick(Unreached::Tls, &mut cause),
                K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe => {
                    pick(Unreached::Closed, &mut cause)
                }
                _ => {}
            }
        }
        if x.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
            pick(Unreached::TimedOut, &mut cause);
        }
        innermost = text;
        cur = x.source();
    }
    // rustls's errors are not always wrapped in a kind of their own: their words are.
    let tls_words = [
        "certificate",
        "corrupt message",
        "handshake",
        "tls",
        "alert",
    ];
    let lower = innermost.to_lowercase();
    if matches!(cause, Unreached::Other | Unreached::Closed)
        && tls_words.iter().any(|w| lower.contains(w))
    {
        cause = Unreached::Tls;
    }
    Classified {
        cause,
        connecting,
        innermost,
    }
}

/// An error of a client's middleware whose message is already in words for the user
/// (what failed, the server or plugin, what to do next); [`explain`] shows it as it is.
#[derive(Debug)]
pub struct Worded(Box<dyn std::error::Error + Send + Sync>);

impl Worded {
    /// `e` as a boxed middleware error that [`explain`] shows as it is.
    pub fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> tower_box::BoxError {
        Box::new(Worded(Box::new(e)))
    }

    /// The error it wraps, for callers that want its type back.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Display for Worded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Worded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// A boxed error as tower middleware returns it.
mod tower_box {
    pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
}

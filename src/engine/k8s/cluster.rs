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
    let (timed_out, connecting, innermost) = classify(e);
    match (timed_out, connecting) {
        (true, true) => format!("timed out connecting to the API server ({innermost})"),
        (true, false) => format!("timed out waiting for the API server to answer ({innermost})"),
        _ => format!("cannot connect: {e}"),
    }
}

/// Whether `e` (or what caused it) is a timeout, and whether it happened while
/// connecting; the innermost cause in words.
pub fn classify(e: &(dyn std::error::Error + 'static)) -> (bool, bool, String) {
    let (mut timed_out, mut connecting) = (false, false);
    let mut innermost = e.to_string();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(l) = x.downcast_ref::<hyper_util::client::legacy::Error>()
            && l.is_connect()
        {
            connecting = true;
        }
        if let Some(io) = x.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            timed_out = true;
        }
        if x.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
            timed_out = true;
        }
        innermost = x.to_string();
        cur = x.source();
    }
    (timed_out, connecting, innermost)
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

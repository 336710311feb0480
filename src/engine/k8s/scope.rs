//! What a job takes from a cluster: whole namespaces (named, matched by a pattern, or
//! all of them but the excluded and the system ones), chosen workloads, or a label
//! selection ([`Scope`], resolved from a [`Namespaces`] choice against the cluster);
//! which resource types come along ([`Resources`]); and whether every cluster-scoped
//! object does too, each with a rule for what restoring it means ([`cluster_rule`]).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::objects::{Catalog, ObjRef};
use super::{K8sError, Result};

/// What to capture.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// Whole namespaces: every object of every type the cluster serves.
    Namespaces(Vec<String>),
    /// Chosen workloads (`kind/name`, e.g. `deployment/web`) of one namespace, with
    /// their dependency closure.
    Workloads {
        namespace: String,
        workloads: Vec<String>,
    },
    /// Objects matching a label selector in namespaces, with their closure.
    Selector {
        namespaces: Vec<String>,
        selector: String,
    },
}

impl Scope {
    pub fn namespaces(&self) -> Vec<String> {
        match self {
            Scope::Namespaces(n) | Scope::Selector { namespaces: n, .. } => n.clone(),
            Scope::Workloads { namespace, .. } => vec![namespace.clone()],
        }
    }

    /// A stable description, used as the snapshot's paths (and to find a parent).
    pub fn paths(&self, cluster: &str) -> Vec<String> {
        match self {
            Scope::Namespaces(ns) => ns.iter().map(|n| format!("k8s://{cluster}/{n}")).collect(),
            Scope::Workloads {
                namespace,
                workloads,
            } => workloads
                .iter()
                .map(|w| format!("k8s://{cluster}/{namespace}/{w}"))
                .collect(),
            Scope::Selector {
                namespaces,
                selector,
            } => namespaces
                .iter()
                .map(|n| format!("k8s://{cluster}/{n}?selector={selector}"))
                .collect(),
        }
    }
}

/// Glob matching: `*` matches any run of characters (also none), `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Namespaces of the cluster's own machinery and of well-known add-ons installed per
/// cluster (networking, policy, observability agents, backup tools): a whole-cluster
/// job leaves them out unless they are named or `--include-system` is given. Entries
/// ending in `-` are prefixes.
pub const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    // Networking and policy.
    "calico-system",
    "calico-apiserver",
    "tigera-operator",
    "kube-flannel",
    "cilium-secrets",
    "gatekeeper-system",
    "kyverno",
    // Managed clusters' agents.
    "amazon-cloudwatch",
    "amazon-guardduty",
    "aws-observability",
    "gke-managed-",
    "gmp-system",
    "gmp-public",
    "config-management-system",
    "azure-arc",
    "azure-extensions-usage-system",
    "cattle-",
    "fleet-",
    "openshift-",
    "local-path-storage",
    // Backup tools, this one's own kind.
    "velero",
    "kasten-io",
    "cloudcasa-io",
];

/// Whether `ns` is a system or add-on namespace ([`SYSTEM_NAMESPACES`]).
pub fn is_system(ns: &str) -> bool {
    SYSTEM_NAMESPACES.iter().any(|s| match s.strip_suffix('-') {
        Some(prefix) if s.ends_with('-') => ns.starts_with(s) && ns.len() > prefix.len() + 1,
        _ => ns == *s,
    })
}

/// Which namespaces a job takes: named ones (or patterns: `-n 'shop-*'`), or all of
/// them (`-A`), less those excluded (`--exclude-namespace GLOB`); system namespaces
/// only when named exactly or with `include_system`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub names: Vec<String>,
    pub all: bool,
    pub exclude: Vec<String>,
    pub include_system: bool,
}

impl Namespaces {
    /// The named namespaces exactly (no pattern, nothing excluded).
    pub fn named(names: &[String]) -> Namespaces {
        Namespaces {
            names: names.to_vec(),
            ..Namespaces::default()
        }
    }

    /// Whether the cluster must be asked which namespaces it has.
    pub fn needs_listing(&self) -> bool {
        self.all || !self.exclude.is_empty() || self.names.iter().any(|n| is_pattern(n))
    }

    /// The namespaces of `existing` (those of the cluster `cluster`) it takes, in that
    /// order; an error says which named one does not exist, or why none is left.
    pub fn pick(&self, existing: &[String], cluster: &str) -> Result<Vec<String>> {
        if self.names.is_empty() && !self.all {
            return Err(K8sError::Invalid(
                "name the namespace(s) with -n NAMESPACE (patterns like 'shop-*' too), or take them all with -A".into(),
            ));
        }
        for n in self.names.iter().filter(|n| !is_pattern(n)) {
            if !existing.contains(n) {
                return Err(K8sError::Invalid(format!(
                    "the namespace {n:?} does not exist on {cluster}: list them with `ferry namespaces --context {cluster}`"
                )));
            }
        }
        let excluded = |n: &str| self.exclude.iter().any(|g| glob(g, n));
        let named = |n: &str| self.names.iter().any(|p| p == n);
        let matched = |n: &str| self.all || self.names.iter().any(|p| is_pattern(p) && glob(p, n));
        let taken: Vec<String> = existing
            .iter()
            .filter(|n| named(n) || (matched(n) && (self.include_system || !is_system(n))))
            .filter(|n| !excluded(n))
            .cloned()
            .collect();
        if taken.is_empty() {
            let system: Vec<&str> = existing
                .iter()
                .filter(|n| is_system(n) && matched(n))
                .map(String::as_str)
                .collect();
            let mut why = format!(
                "{} leaves no namespace of {cluster} to take",
                self.describe()
            );
            if !system.is_empty() && !self.include_system {
                why.push_str(&format!(
                    " (system namespaces are left out unless named or --include-system is given: {})",
                    system.join(", ")
                ));
            }
            why.push_str(&format!(
                ". It has: {}",
                if existing.is_empty() {
                    "none".to_string()
                } else {
                    existing.join(", ")
                }
            ));
            return Err(K8sError::Invalid(why));
        }
        Ok(taken)
    }

    /// Asks `client`'s cluster for its namespaces where needed, then [`Namespaces::pick`].
    pub async fn resolve(&self, client: &kube::Client, cluster: &str) -> Result<Vec<String>> {
        if !self.needs_listing() {
            // Named namespaces are checked by the capture itself (it reads each).
            return self.pick(&self.names, cluster);
        }
        self.pick(&list_namespaces(client, cluster).await?, cluster)
    }

    /// The choice in the flags' words (`-A --exclude-namespace 'tmp-*'`).
    pub fn describe(&self) -> String {
        let mut w: Vec<String> = Vec::new();
        if self.all {
            w.push("-A".into());
        }
        w.extend(self.names.iter().map(|n| format!("-n {n}")));
        w.extend(
            self.exclude
                .iter()
                .map(|n| format!("--exclude-namespace {n}")),
        );
        if self.include_system {
            w.push("--include-system".into());
        }
        w.join(" ")
    }
}

/// The names of every namespace of `cluster` (which `client` reaches), sorted.
pub async fn list_namespaces(client: &kube::Client, cluster: &str) -> Result<Vec<String>> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let list = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| K8sError::api(format!("cannot list the namespaces of {cluster}"), &e))?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Which resource types a job takes (`--include-resources`, `--exclude-resources`:
/// kinds, plurals, `plural.group`, globs), and whether every cluster-scoped object
/// comes along (`--include-cluster-resources`) rather than only those the namespaced
/// ones need. Recorded in the capture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

impl Resources {
    pub fn is_default(&self) -> bool {
        *self == Resources::default()
    }

    /// Whether the type `ar` is taken: some include pattern names it (or there is none)
    /// and no exclude pattern does.
    pub fn takes(&self, ar: &kube::api::ApiResource) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| names_type(p, ar)))
            && !self.exclude.iter().any(|p| names_type(p, ar))
    }

    /// Checks the patterns against what `catalog` serves, before anything is read: a
    /// name (not a pattern) that names no type, or patterns that leave no namespaced
    /// type, are errors that say what the cluster serves.
    pub fn check(&self, catalog: &Catalog, cluster: &str) -> Result<()> {
        for p in self.include.iter().chain(&self.exclude) {
            if !is_pattern(p) && !catalog.resources.iter().any(|r| names_type(p, &r.ar)) {
                let near: Vec<String> = catalog
                    .resources
                    .iter()
                    .filter(|r| {
                        let p = p.to_ascii_lowercase();
                        let plural = r.ar.plural.as_str();
                        plural.contains(&p)
                            || p.contains(plural)
                            || p.starts_with(&plural[..plural.len().min(4)])
                    })
                    .map(|r| qualified(&r.ar))
                    .take(6)
                    .collect();
                return Err(K8sError::Invalid(format!(
                    "{cluster} serves no resource type {p:?}{}: name types as kubectl does (deployments, deployments.apps, Deployment; `kubectl api-resources` lists them)",
                    if near.is_empty() {
                        String::new()
                    } else {
                        format!(" (did you mean {}?)", near.join(", "))
                    }
                )));
            }
        }
        if !catalog
            .resources
            .iter()
            .any(|r| r.namespaced && r.listable && self.takes(&r.ar))
        {
            return Err(K8sError::Invalid(format!(
                "{} leaves no namespaced resource type of {cluster} to take",
                self.describe()
            )));
        }
        Ok(())
    }

    /// The choice in the flags' words.
    pub fn describe(&self) -> String {
        let mut w: Vec<String> = Vec::new();
        if !self.include.is_empty() {
            w.push(format!("--include-resources {}", self.include.join(",")));
        }
        if !self.exclude.is_empty() {
            w.push(format!("--exclude-resources {}", self.exclude.join(",")));
        }
        if self.cluster {
            w.push("--include-cluster-resources".into());
        }
        w.join(" ")
    }
}

/// `plural.group`, or the plural of a core type.
fn qualified(ar: &kube::api::ApiResource) -> String {
    if ar.group.is_empty() {
        ar.plural.clone()
    } else {
        format!("{}.{}", ar.plural, ar.group)
    }
}

/// Whether the pattern `p` names the type `ar`: as its plural, its kind (any case),
/// either followed by `.group`, or `*`.
fn names_type(p: &str, ar: &kube::api::ApiResource) -> bool {
    let p = p.trim().to_ascii_lowercase();
    let kind = ar.kind.to_ascii_lowercase();
    let mut names = vec![ar.plural.clone(), kind.clone()];
    if !ar.group.is_empty() {
        names.push(format!("{}.{}", ar.plural, ar.group));
        names.push(format!("{kind}.{}", ar.group));
    }
    names.iter().any(|n| glob(&p, n))
}

/// Cluster-scoped types never captured, even with every cluster-scoped object: they
/// describe the source's machines, allocations and requests, not what runs on it.
pub fn never_captured(ar: &kube::api::ApiResource) -> bool {
    matches!(
        (ar.group.as_str(), ar.kind.as_str()),
        ("", "Node")
            | ("", "PersistentVolume")
            | ("", "Namespace")
            | ("storage.k8s.io", "CSINode")
            | ("storage.k8s.io", "VolumeAttachment")
            | ("storage.k8s.io", "StorageClass")
            | ("certificates.k8s.io", "CertificateSigningRequest")
            | ("networking.k8s.io", "IPAddress")
            | ("networking.k8s.io", "ServiceCIDR")
            | ("snapshot.storage.k8s.io", "VolumeSnapshotContent")
            | ("metrics.k8s.io", _)
    )
}

/// What restoring a cluster-scoped object means: `None` when it is created on the
/// target (or left as it is there, by the plan's conflict rule), else why it is not.
/// `namespaces` are the (source) namespaces the restore takes.
pub fn cluster_rule(obj: &Value, namespaces: &[String]) -> Option<String> {
    let r = ObjRef::of(obj);
    let system_rbac = r.name.starts_with("system:")
        || obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults";
    let why = match (r.group.as_str(), r.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => return None,
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding") if system_rbac => {
            "the target has its own system roles and bindings"
        }
        ("scheduling.k8s.io", "PriorityClass") if r.name.starts_with("system-") => {
            "built into every cluster"
        }
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("networking.k8s.io", "IngressClass")
        | ("node.k8s.io", "RuntimeClass")
        | ("certificates.k8s.io", "ClusterTrustBundle") => return None,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => {
            return webhook_rule(obj, namespaces);
        }
        ("admissionregistration.k8s.io", _) => {
            "admission policies follow the add-on that installs them: install it on the target"
        }
        ("storage.k8s.io", "CSIDriver") => "installed on the target with its driver",
        ("snapshot.storage.k8s.io", "VolumeSnapshotClass") => {
            "snapshot classes belong to the target's CSI drivers, as storage classes do"
        }
        ("apiregistration.k8s.io", "APIService") => {
            "registered on the target by the add-on that serves it"
        }
        ("flowcontrol.apiserver.k8s.io", _) => "the API server's own settings",
        ("", "PersistentVolume") => "volumes are provisioned for their claims on the target",
        ("storage.k8s.io", "StorageClass") => "storage classes are mapped, not copied",
        (g, _) if g.ends_with(".k8s.io") || g.is_empty() => {
            "a cluster-scoped object of Kubernetes itself: recorded for reference"
        }
        // A cluster-scoped custom resource (a ClusterIssuer…): its CRD comes along.
        _ => return None,
    };
    Some(why.to_string())
}

/// A webhook configuration is restored only when every webhook it declares calls a
/// URL or a Service whose namespace the job takes: one calling a service that does not
/// come along would send the target's API requests nowhere (and, failing closed, block
/// them).
fn webhook_rule(obj: &Value, namespaces: &[String]) -> Option<String> {
    let hooks = obj["webhooks"].as_array().cloned().unwrap_or_default();
    let away: Vec<String> = hooks
        .iter()
        .filter_map(|h| {
            let svc = &h["clientConfig"]["service"];
            let ns = svc["namespace"].as_str().unwrap_or_default();
            (svc.is_object() && !namespaces.iter().any(|n| n == ns)).then(|| {
                format!(
                    "{}/{}",
                    svc["namespace"].as_str().unwrap_or("?"),
                    svc["name"].as_str().unwrap_or("?")
                )
            })
        })
        .collect();
    if away.is_empty() {
        return None;
    }
    Some(format!(
        "calls service(s) {} that do not come along: restore their namespace with it, or install the add-on on the target",
        away.join(", ")
    ))
}

/// Parses `a=b,c!=d,e in (f,g),h,!i` into a structured selector.
pub fn parse_selector(s: &str) -> Result<Value> {
    let mut labels = serde_json::Map::new();
    let mut exprs = Vec::new();
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let bad = || K8sError::Invalid(format!("cannot read the label selector part {p:?}"));
        if let Some((k, v)) = p.split_once("!=") {
            exprs.push(json!({"key": k.trim(), "operator": "NotIn", "values": [v.trim()]}));
        } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
            labels.insert(k.trim().into(), json!(v.trim()));
        } else if let Some((k, rest)) = p.split_once(" notin ").or_else(|| p.split_once(" in ")) {
            let op = if p.contains(" notin ") { "NotIn" } else { "In" };
            let vals: Vec<&str> = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(bad)?
                .split(',')
                .map(str::trim)
                .collect();
            exprs.push(json!({"key": k.trim(), "operator": op, "values": vals}));
        } else if let Some(k) = p.strip_prefix('!') {
            exprs.push(json!({"key": k.trim(), "operator": "DoesNotExist"}));
        } else if p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            exprs.push(json!({"key": p, "operator": "Exists"}));
        } else {
            return Err(bad());
        }
    }
    Ok(json!({"matchLabels": labels, "matchExpressions": exprs}))
}

/// Parses selectors joined by ` or ` (several `-l`, or Velero's `--or-selector`
/// form): an object is selected when any of them selects it.
pub fn parse_selectors(s: &str) -> Result<Vec<Value>> {
    s.split(" or ")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(parse_selector)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ApiResource;

    fn existing() -> Vec<String> {
        [
            "calico-system",
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
            "openshift-monitoring",
            "shop",
            "shop-staging",
            "tmp-1",
            "tmp-2",
        ]
        .map(String::from)
        .to_vec()
    }

    fn pick(n: Namespaces) -> std::result::Result<Vec<String>, String> {
        n.pick(&existing(), "prod").map_err(|e| e.to_string())
    }

    #[test]
    fn all_namespaces_leave_out_the_system_and_the_excluded() {
        let all = Namespaces {
            all: true,
            exclude: vec!["tmp-*".into()],
            ..Namespaces::default()
        };
        assert_eq!(
            pick(all.clone()).unwrap(),
            ["default", "shop", "shop-staging"]
        );
        let with_system = Namespaces {
            include_system: true,
            ..all.clone()
        };
        assert!(
            pick(with_system)
                .unwrap()
                .contains(&"kube-system".to_string())
        );
        // Named exactly, a system namespace comes along; excluded, a named one does not.
        let named = Namespaces {
            names: vec!["kube-system".into(), "shop".into()],
            exclude: vec!["shop".into()],
            ..Namespaces::default()
        };
        assert_eq!(pick(named).unwrap(), ["kube-system"]);
    }

    #[test]
    fn patterns_match_and_names_must_exist() {
        let p = Namespaces::named(&["shop*".into()]);
        assert!(p.needs_listing());
        assert_eq!(pick(p).unwrap(), ["shop", "shop-staging"]);
        let e = pick(Namespaces::named(&["shp".into()])).unwrap_err();
        assert!(e.contains("\"shp\" does not exist on prod"), "{e}");
        let e = pick(Namespaces::default()).unwrap_err();
        assert!(e.contains("-A"), "{e}");
    }

    #[test]
    fn a_choice_that_leaves_nothing_says_why() {
        let e = pick(Namespaces {
            all: true,
            exclude: vec!["*".into()],
            ..Namespaces::default()
        })
        .unwrap_err();
        assert!(
            e.starts_with("-A --exclude-namespace * leaves no namespace of prod"),
            "{e}"
        );
        let e = pick(Namespaces::named(&["kube-*".into()])).unwrap_err();
        assert!(
            e.contains("--include-system is given: kube-node-lease, kube-public, kube-system"),
            "{e}"
        );
    }

    #[test]
    fn system_namespaces_by_name_and_prefix() {
        for s in [
            "kube-system",
            "calico-system",
            "openshift-monitoring",
            "gke-managed-x",
        ] {
            assert!(is_system(s), "{s}");
        }
        for s in ["default", "shop", "openshift-", "kube-prometheus", "cattle"] {
            assert!(!is_system(s), "{s}");
        }
    }

    fn ar(group: &str, kind: &str, plural: &str) -> ApiResource {
        ApiResource {
            group: group.into(),
            version: "v1".into(),
            api_version: if group.is_empty() {
                "v1".into()
            } else {
                format!("{group}/v1")
            },
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    #[test]
    fn resource_types_are_named_as_kubectl_names_them() {
        let dep = ar("apps", "Deployment", "deployments");
        let cm = ar("", "ConfigMap", "configmaps");
        for p in [
            "deployments",
            "deployments.apps",
            "Deployment",
            "deployment.apps",
            "*",
            "deploy*",
        ] {
            assert!(names_type(p, &dep), "{p}");
        }
        assert!(!names_type("deployments.batch", &dep));
        let only = Resources {
            include: vec!["configmaps".into()],
            ..Resources::default()
        };
        assert!(only.takes(&cm) && !only.takes(&dep));
        let but = Resources {
            exclude: vec!["*.apps".into()],
            ..Resources::default()
        };
        assert!(but.takes(&cm) && !but.takes(&dep));
    }

    #[test]
    fn cluster_objects_have_a_rule_each() {
        let rule = |o: Value| cluster_rule(&o, &["shop".to_string()]);
        assert_eq!(
            rule(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"}})
            ),
            None
        );
        assert_eq!(
            rule(
                json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "letsencrypt"}})
            ),
            None,
            "a custom resource comes with its CRD"
        );
        assert!(
            rule(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:controller:x"}}))
                .is_some()
        );
        assert_eq!(
            rule(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "shop-reader"}})
            ),
            None
        );
        assert!(
            rule(json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "system-node-critical"}}))
                .is_some()
        );
        let hook = |ns: &str| {
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "shop-hook"},
                "webhooks": [{"name": "v.shop.example.com", "clientConfig": {"service": {"namespace": ns, "name": "hook"}}}]})
        };
        assert_eq!(rule(hook("shop")), None, "its service comes along");
        let away = rule(hook("payments")).unwrap();
        assert!(away.contains("payments/hook"), "{away}");
        assert!(
            rule(json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "ebs.csi.aws.com"}}))
                .is_some()
        );
    }

    #[test]
    fn several_selectors_select_what_any_selects() {
        let s = parse_selectors("app=web or tier in (db, cache)").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["matchLabels"]["app"], "web");
        assert_eq!(
            s[1]["matchExpressions"][0]["values"],
            json!(["db", "cache"])
        );
        assert!(parse_selectors("a in b").is_err());
    }
}

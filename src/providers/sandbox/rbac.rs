//! Authorization as Kubernetes RBAC: every request is checked against the Roles,
//! ClusterRoles, RoleBindings and ClusterRoleBindings stored in the cluster (verbs, API
//! groups, resources with subresources such as `pods/exec`, resourceNames,
//! nonResourceURLs, `*` wildcards; ClusterRole aggregation is not evaluated). Members of
//! `system:masters` may do anything, as on a real cluster. Every authenticated user is in
//! `system:authenticated`; a user named `system:serviceaccount:<ns>:<name>` is also in
//! `system:serviceaccounts` and `system:serviceaccounts:<ns>`.
//!
//! Also the bootstrap policy a cluster starts with (`cluster-admin`, `admin`, `edit`,
//! `view`, `system:discovery`, `system:basic-user`, `system:public-info-viewer` and their
//! bindings, plus `ferry:viewer`, which makes the sandbox's `viewer` user a `view`er), and
//! the review APIs (`SelfSubjectReview`, `SelfSubjectAccessReview`,
//! `SelfSubjectRulesReview`) that `kubectl auth whoami` and `kubectl auth can-i` use.
//!
//! Owns authorization decisions and the review APIs. Must not change objects other than
//! creating the bootstrap policy where it is missing.

use serde_json::{Value, json};

use super::server::User;
use super::store::Key;
use super::verbs::{ApiError, ApiResult, Cluster, now};

const RBAC: &str = "rbac.authorization.k8s.io";
pub const AUTHENTICATION: &str = "authentication.k8s.io";
pub const AUTHORIZATION: &str = "authorization.k8s.io";

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// or for a non-resource request the lower-case HTTP method (`get`, `post`, ...).
    pub verb: String,
    /// The namespace of a namespaced request; empty at the cluster scope.
    pub namespace: String,
    pub api_group: String,
    /// The plural resource name (`pods`); empty for a non-resource request.
    pub resource: String,
    /// `exec`, `log`, `scale`, `status`, ...; empty for the object itself.
    pub subresource: String,
    /// The object's name; empty for list, watch, create and deletecollection.
    pub name: String,
    /// The URL path of a non-resource request (`/version`, `/apis`); empty otherwise.
    pub path: String,
}

impl Attributes {
    /// A request on a resource (`subresource` and `name` may be empty).
    pub fn resource(
        verb: &str,
        namespace: Option<&str>,
        api_group: &str,
        resource: &str,
        subresource: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.to_string(),
            namespace: namespace.unwrap_or("").to_string(),
            api_group: api_group.to_string(),
            resource: resource.to_string(),
            subresource: subresource.to_string(),
            name: name.to_string(),
            path: String::new(),
        }
    }

    /// A request on a path that names no resource (discovery, `/version`, ...).
    pub fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.to_string(),
            path: path.to_string(),
            ..Default::default()
        }
    }

    fn is_resource(&self) -> bool {
        self.path.is_empty()
    }

    fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The groups a request of `user` is evaluated with: its own, `system:authenticated`, and
/// the service-account groups of a service account.
pub fn effective_groups(user: &User) -> Vec<String> {
    let mut groups = user.groups.clone();
    let mut add = |g: String| {
        if !groups.contains(&g) {
            groups.push(g);
        }
    };
    if let Some(rest) = user.name.strip_prefix("system:serviceaccount:")
        && let Some((ns, _)) = rest.split_once(':')
    {
        add("system:serviceaccounts".to_string());
        add(format!("system:serviceaccounts:{ns}"));
    }
    add("system:authenticated".to_string());
    groups
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn has(list: &[&str], want: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == want)
}

/// Whether one PolicyRule allows the request.
fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !has(&strings(&rule["verbs"]), &a.verb) {
        return false;
    }
    if !a.is_resource() {
        return strings(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*"
                || *u == a.path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| a.path.starts_with(prefix))
        });
    }
    if !has(&strings(&rule["apiGroups"]), &a.api_group) {
        return false;
    }
    let combined = a.combined_resource();
    let resource_ok = strings(&rule["resources"]).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && *r == format!("*/{}", a.subresource))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(&rule["resourceNames"]);
    names.is_empty() || names.contains(&a.name.as_str())
}

/// Whether a binding's subject is this user.
fn subject_matches(subject: &Value, binding_ns: &str, user: &User, groups: &[String]) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str().unwrap_or("") {
        "User" => name == user.name,
        "Group" => groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// One binding that applies to the user, with the rules of the role it grants.
struct Grant {
    binding_kind: &'static str,
    binding: String,
    binding_ns: String,
    role_kind: String,
    role: String,
    rules: Vec<Value>,
}

impl Grant {
    fn describe(&self, subject: &str) -> String {
        let ns = if self.binding_ns.is_empty() {
            String::new()
        } else {
            format!(" in namespace \"{}\"", self.binding_ns)
        };
        format!(
            "RBAC: allowed by {} \"{}\" of {} \"{}\" to {subject}{ns}",
            self.binding_kind, self.binding, self.role_kind, self.role
        )
    }
}

/// The grants of `user` at the cluster scope and, when `namespace` is not empty, in it.
fn grants(cluster: &Cluster, user: &User, namespace: &str) -> Vec<Grant> {
    let groups = effective_groups(user);
    let store = &cluster.store;
    let role_rules = |kind: &str, ns: &str, name: &str| -> Vec<Value> {
        let key = match kind {
            "ClusterRole" => Key::new(RBAC, "clusterroles", "", name),
            "Role" if !ns.is_empty() => Key::new(RBAC, "roles", ns, name),
            _ => return Vec::new(),
        };
        store
            .get(&key)
            .and_then(|r| r["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let mut scan = |resource: &str, ns: Option<&str>, binding_kind: &'static str| {
        for (k, b) in store.list(RBAC, resource, ns) {
            let applies = b["subjects"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| subject_matches(s, &k.namespace, user, &groups))
            });
            if !applies {
                continue;
            }
            let role_kind = b["roleRef"]["kind"].as_str().unwrap_or("").to_string();
            let role = b["roleRef"]["name"].as_str().unwrap_or("").to_string();
            out.push(Grant {
                binding_kind,
                binding: k.name.clone(),
                binding_ns: k.namespace.clone(),
                rules: role_rules(&role_kind, &k.namespace, &role),
                role_kind,
                role,
            });
        }
    };
    scan("clusterrolebindings", None, "ClusterRoleBinding");
    if !namespace.is_empty() {
        scan("rolebindings", Some(namespace), "RoleBinding");
    }
    out
}

/// Whether RBAC allows the request, with the reason a review reports.
pub fn decide(cluster: &Cluster, user: &User, a: &Attributes) -> (bool, String) {
    if effective_groups(user).iter().any(|g| g == "system:masters") {
        return (true, "allowed as a member of system:masters".into());
    }
    let subject = format!("User \"{}\"", user.name);
    for g in grants(cluster, user, &a.namespace) {
        if g.rules.iter().any(|r| rule_allows(r, a)) {
            return (true, g.describe(&subject));
        }
    }
    (false, String::new())
}

/// Allows the request or returns the 403 `Status` a Kubernetes API server returns. The
/// one authorizer of the sandbox: routing, watches and exec call it.
pub fn authorize(cluster: &Cluster, user: &User, a: &Attributes) -> ApiResult<()> {
    if decide(cluster, user, a).0 {
        return Ok(());
    }
    Err(forbidden(user, a))
}

/// The 403 of a denied request, worded as the API server words it.
pub fn forbidden(user: &User, a: &Attributes) -> ApiError {
    if !a.is_resource() {
        let mut e = ApiError::new(
            403,
            "Forbidden",
            format!(
                "forbidden: User \"{}\" cannot {} path \"{}\"",
                user.name, a.verb, a.path
            ),
        );
        e.details = json!({});
        return e;
    }
    let scope = if a.namespace.is_empty() {
        " at the cluster scope".to_string()
    } else {
        format!(" in the namespace \"{}\"", a.namespace)
    };
    let reason = format!(
        "User \"{}\" cannot {} resource \"{}\" in API group \"{}\"{scope}",
        user.name,
        a.verb,
        a.combined_resource(),
        a.api_group
    );
    let qualified = if a.api_group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.api_group)
    };
    let what = if a.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", a.name)
    };
    let mut e = ApiError::new(403, "Forbidden", format!("{what} is forbidden: {reason}"));
    e.details = json!({"name": a.name, "group": a.api_group, "kind": a.resource});
    e
}

/// The bootstrap ClusterRoles: name and rules.
fn bootstrap_roles() -> Vec<(&'static str, Value)> {
    let read = json!(["get", "list", "watch"]);
    let write = json!(["create", "delete", "deletecollection", "patch", "update"]);
    let view = vec![
        json!({"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims",
            "persistentvolumeclaims/status", "pods", "replicationcontrollers", "replicationcontrollers/scale",
            "serviceaccounts", "services", "services/status"], "verbs": read}),
        json!({"apiGroups": [""], "resources": ["bindings", "events", "limitranges", "namespaces/status",
            "pods/log", "pods/status", "replicationcontrollers/status", "resourcequotas",
            "resourcequotas/status"], "verbs": read}),
        json!({"apiGroups": [""], "resources": ["namespaces"], "verbs": read}),
        json!({"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read}),
        json!({"apiGroups": ["apps"], "resources": ["controllerrevisions", "daemonsets", "daemonsets/status",
            "deployments", "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
            "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status"], "verbs": read}),
        json!({"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers",
            "horizontalpodautoscalers/status"], "verbs": read}),
        json!({"apiGroups": ["batch"], "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], "verbs": read}),
        json!({"apiGroups": ["policy"], "resources": ["poddisruptionbudgets", "poddisruptionbudgets/status"], "verbs": read}),
        json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingresses/status", "networkpolicies"], "verbs": read}),
    ];
    let mut edit = vec![
        json!({"apiGroups": [""], "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"], "verbs": write}),
        json!({"apiGroups": [""], "resources": ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
            "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"], "verbs": write}),
        json!({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}),
        json!({"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
            "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"], "verbs": write}),
        json!({"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": write}),
        json!({"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": write}),
        json!({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": write}),
        json!({"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": write}),
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}),
        json!({"apiGroups": [""], "resources": ["secrets", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "services/proxy"], "verbs": read}),
        json!({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}),
    ];
    edit.extend(view.iter().cloned());
    let mut admin = vec![
        json!({"apiGroups": [RBAC], "resources": ["rolebindings", "roles"],
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}),
        json!({"apiGroups": [AUTHORIZATION], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]}),
    ];
    admin.extend(edit.iter().cloned());
    vec![
        (
            "cluster-admin",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                   {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        ),
        ("admin", Value::Array(admin)),
        ("edit", Value::Array(edit)),
        ("view", Value::Array(view)),
        (
            "system:discovery",
            json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                "/openapi", "/openapi/*", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
        (
            "system:basic-user",
            json!([
                {"apiGroups": [AUTHENTICATION], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
                {"apiGroups": [AUTHORIZATION], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
            ]),
        ),
        (
            "system:public-info-viewer",
            json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]),
        ),
    ]
}

/// The bootstrap ClusterRoleBindings: name, ClusterRole, subjects.
fn bootstrap_bindings() -> Vec<(&'static str, &'static str, Value)> {
    let group = |g: &str| json!({"kind": "Group", "apiGroup": RBAC, "name": g});
    vec![
        (
            "cluster-admin",
            "cluster-admin",
            json!([group("system:masters")]),
        ),
        (
            "system:discovery",
            "system:discovery",
            json!([group("system:authenticated")]),
        ),
        (
            "system:basic-user",
            "system:basic-user",
            json!([group("system:authenticated")]),
        ),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            json!([
                group("system:authenticated"),
                group("system:unauthenticated")
            ]),
        ),
        (
            "ferry:viewer",
            "view",
            json!([{"kind": "User", "apiGroup": RBAC, "name": "viewer"}]),
        ),
    ]
}

/// Creates the bootstrap roles and bindings that are missing (existing ones, changed or
/// not, are left as they are).
pub fn bootstrap(cluster: &mut Cluster) -> ApiResult<()> {
    let roles = cluster
        .info(RBAC, "v1", "clusterroles")
        .ok_or_else(|| ApiError::new(500, "InternalError", "clusterroles are not served"))?;
    let bindings = cluster
        .info(RBAC, "v1", "clusterrolebindings")
        .ok_or_else(|| ApiError::new(500, "InternalError", "clusterrolebindings are not served"))?;
    let meta = |name: &str| {
        let mut labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
        if name.starts_with("ferry:") {
            labels = json!({"app.kubernetes.io/managed-by": "ferry-sandbox"});
        }
        json!({"name": name, "labels": labels,
               "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}})
    };
    for (name, rules) in bootstrap_roles() {
        if cluster
            .store
            .get(&Key::new(RBAC, "clusterroles", "", name))
            .is_none()
        {
            cluster.create(
                &roles,
                None,
                json!({"metadata": meta(name), "rules": rules}),
            )?;
        }
    }
    for (name, role, subjects) in bootstrap_bindings() {
        if cluster
            .store
            .get(&Key::new(RBAC, "clusterrolebindings", "", name))
            .is_none()
        {
            cluster.create(
                &bindings,
                None,
                json!({"metadata": meta(name), "subjects": subjects,
                       "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}}),
            )?;
        }
    }
    Ok(())
}

/// The review resources: (group, plural, kind). They are created, never stored.
pub const REVIEWS: &[(&str, &str, &str)] = &[
    (AUTHENTICATION, "selfsubjectreviews", "SelfSubjectReview"),
    (
        AUTHORIZATION,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        AUTHORIZATION,
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
];

/// Answers the creation of a review (`plural` of `group`, version `v1`) by `user`.
pub fn review(
    cluster: &Cluster,
    user: &User,
    group: &str,
    plural: &str,
    body: &Value,
) -> ApiResult<Value> {
    let kind = REVIEWS
        .iter()
        .find(|(g, p, _)| *g == group && *p == plural)
        .map(|(_, _, k)| *k)
        .ok_or_else(ApiError::route_not_found)?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let mut meta = body["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["creationTimestamp"] = json!(now());
    let mut out = json!({"kind": kind, "apiVersion": format!("{group}/v1"), "metadata": meta});
    match plural {
        "selfsubjectreviews" => {
            out["status"] =
                json!({"userInfo": {"username": user.name, "groups": effective_groups(user)}});
        }
        "selfsubjectaccessreviews" => {
            let spec = &body["spec"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            let attrs = if let Some(r) = spec["resourceAttributes"].as_object() {
                let r = Value::Object(r.clone());
                Attributes {
                    verb: s(&r["verb"]),
                    namespace: s(&r["namespace"]),
                    api_group: s(&r["group"]),
                    resource: s(&r["resource"]),
                    subresource: s(&r["subresource"]),
                    name: s(&r["name"]),
                    path: String::new(),
                }
            } else if let Some(n) = spec["nonResourceAttributes"].as_object() {
                let n = Value::Object(n.clone());
                Attributes::non_resource(&s(&n["verb"]), &s(&n["path"]))
            } else {
                let mut e = ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{kind}.{AUTHORIZATION} \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
                    ),
                );
                e.details = json!({"group": AUTHORIZATION, "kind": kind, "causes": [{"reason": "FieldValueInvalid",
                    "message": "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    "field": "spec.resourceAttributes"}]});
                return Err(e);
            };
            let (allowed, reason) = decide(cluster, user, &attrs);
            out["spec"] = spec.clone();
            out["status"] = json!({"allowed": allowed});
            if !reason.is_empty() {
                out["status"]["reason"] = json!(reason);
            }
        }
        _ => {
            let ns = body["spec"]["namespace"].as_str().unwrap_or("");
            out["spec"] = body["spec"].clone();
            out["status"] = rules_review(cluster, user, ns);
        }
    }
    Ok(out)
}

/// What `user` may do in `namespace`: the status of a SelfSubjectRulesReview.
fn rules_review(cluster: &Cluster, user: &User, namespace: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for g in grants(cluster, user, namespace) {
        for r in g.rules {
            if r["nonResourceURLs"].is_array() {
                non_resource_rules
                    .push(json!({"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}));
            } else {
                let mut rule = json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"], "resources": r["resources"]});
                if r["resourceNames"].is_array() {
                    rule["resourceNames"] = r["resourceNames"].clone();
                }
                resource_rules.push(rule);
            }
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let mut c = Cluster::for_tests();
        bootstrap(&mut c).unwrap();
        c
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn rules_match_verbs_groups_subresources_and_names() {
        let rule = json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"], "resourceNames": ["a"]});
        let a =
            |sub: &str, name: &str| Attributes::resource("get", Some("x"), "", "pods", sub, name);
        assert!(rule_allows(&rule, &a("", "a")));
        assert!(rule_allows(&rule, &a("log", "a")));
        assert!(!rule_allows(&rule, &a("exec", "a")));
        assert!(!rule_allows(&rule, &a("", "b")));
        let star = json!({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]});
        assert!(rule_allows(
            &star,
            &Attributes::resource("update", Some("x"), "apps", "deployments", "scale", "d")
        ));
        assert!(!rule_allows(
            &star,
            &Attributes::resource("update", Some("x"), "apps", "deployments", "", "d")
        ));
        let urls = json!({"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]});
        assert!(rule_allows(
            &urls,
            &Attributes::non_resource("get", "/apis/apps/v1")
        ));
        assert!(rule_allows(
            &urls,
            &Attributes::non_resource("get", "/version")
        ));
        assert!(!rule_allows(
            &urls,
            &Attributes::non_resource("get", "/metrics")
        ));
    }

    #[test]
    fn bindings_grant_by_user_group_and_service_account() {
        let mut c = cluster();
        let ns = c.info("", "v1", "namespaces").unwrap();
        c.create(&ns, None, json!({"metadata": {"name": "qa"}}))
            .unwrap();
        let rb = c.info(RBAC, "v1", "rolebindings").unwrap();
        c.create(&rb, Some("qa"), json!({"metadata": {"name": "devs"},
            "subjects": [{"kind": "Group", "name": "developers"}, {"kind": "ServiceAccount", "name": "bot"}],
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"}})).unwrap();
        let create = |ns: &str| Attributes::resource("create", Some(ns), "", "configmaps", "", "");
        let dev = user("dev", &["developers"]);
        assert!(authorize(&c, &dev, &create("qa")).is_ok());
        let e = authorize(&c, &dev, &create("default")).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "configmaps is forbidden: User \"dev\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
        );
        let bot = user("system:serviceaccount:qa:bot", &[]);
        assert!(authorize(&c, &bot, &create("qa")).is_ok());
        let viewer = user("viewer", &[]);
        assert!(
            authorize(
                &c,
                &viewer,
                &Attributes::resource("list", Some("qa"), "apps", "deployments", "", "")
            )
            .is_ok()
        );
        assert!(
            authorize(
                &c,
                &viewer,
                &Attributes::resource("get", Some("qa"), "", "secrets", "", "s")
            )
            .is_err()
        );
        assert!(authorize(&c, &viewer, &Attributes::non_resource("get", "/apis")).is_ok());
        let admin = user("root", &["system:masters"]);
        assert!(authorize(&c, &admin, &create("default")).is_ok());
        assert!(
            authorize(
                &c,
                &dev,
                &Attributes::resource("create", Some("qa"), "", "pods", "exec", "p")
            )
            .is_ok()
        );
        let e = authorize(
            &c,
            &dev,
            &Attributes::resource("create", Some("default"), "", "pods", "exec", "p"),
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("pods \"p\" is forbidden"),
            "{}",
            e.message
        );
    }
}

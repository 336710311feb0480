//! Velero's resource modifiers: rules that change objects as a restore creates them,
//! read from Velero's file format unchanged (`version: v1`, `resourceModifierRules`),
//! so a Velero user brings the file they have (`--resource-modifiers FILE`).
//!
//! A rule has `conditions` (which objects) and one kind of patches (what changes):
//! JSON patches (`patches`), JSON merge patches (`mergePatches`) or strategic merge
//! patches (`strategicPatches`), applied with [`ferry_patch`]. The plan applies the
//! rules after Ferry's own transformations and lists every change; a rule that cannot
//! change an object it matches is a blocking problem of the plan.
//!
//! Conditions, as Velero matches them:
//! - `groupResource`: the resource's plural, a dot and its group (`deployments.apps`;
//!   core resources without group: `pods`), as a glob in which `*` stops at dots: `*`
//!   is every core resource, `*.apps` every resource of `apps`, `**` every resource;
//! - `namespaces`: globs of the namespace the object had in the snapshot, before
//!   `--map-namespace` (cluster-scoped objects pass);
//! - `resourceNameRegex`: a regular expression found anywhere in the name the object
//!   had in the snapshot (anchor it: `^mysql.*$`);
//! - `labelSelector`: `matchLabels` and `matchExpressions` (In, NotIn, Exists,
//!   DoesNotExist) on the object's labels;
//! - `matches`: JSON pointers and the values they must hold, all of them; a field
//!   that is not there does not match.
//!
//! Every rule's conditions look at the object as it was before any rule changed it.
//! Values in `patches` and `matches` are read as Velero reads them: text that is a
//! number, `true`, `false`, `null` or JSON (`{...}`, `[...]`) is that value; text in
//! double quotes (`"\"3\""`) is a string. A JSON patch whose `test` fails leaves the
//! object to the next rule.
//!
//! Nothing here reads files or talks to clusters: the caller reads the file, the plan
//! applies the rules.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use ferry_patch::{Op, PatchError, Pointer};

use super::objects::ObjRef;

/// What is wrong with a resource modifiers file, or why a rule could not change an
/// object. Each says where (the file, the rule's number from 1 and its line) and
/// what to change.
#[derive(Debug, thiserror::Error)]
pub enum ModifierError {
    /// The file as a whole: not YAML, or not Velero's resource-modifier format.
    #[error("{file}: {detail}")]
    File { file: String, detail: String },
    /// One rule of the file.
    #[error("{file}: resource modifier rule {rule} (line {line}): {detail}")]
    Rule {
        file: String,
        rule: usize,
        line: u64,
        detail: String,
    },
    /// A rule matched an object but could not change it.
    #[error(
        "resource modifier rule {rule} (line {line}) of {file} cannot change {object}: {detail}"
    )]
    Apply {
        file: String,
        rule: usize,
        line: u64,
        object: String,
        detail: String,
    },
}

/// The rules of a resource modifiers file, checked and ready to apply.
#[derive(Debug, Clone)]
pub struct Modifiers {
    file: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// From 1, as the file lists them.
    number: usize,
    line: u64,
    conditions: Conditions,
    patches: Patches,
}

#[derive(Debug, Clone)]
struct Conditions {
    group_resource: Glob,
    /// Empty: every namespace.
    namespaces: Vec<Glob>,
    name: Option<Regex>,
    labels: Option<Selector>,
    matches: Vec<(Pointer, Value)>,
}

#[derive(Debug, Clone)]
enum Patches {
    Json(Vec<Op>),
    Merge(Vec<Value>),
    Strategic(Vec<Value>),
}

// ---------------------------------------------------------------------------------
// The file, as Velero writes it.

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    #[serde(default)]
    version: Option<Value>,
    #[serde(default)]
    resource_modifier_rules: Option<Vec<serde_saphyr::Spanned<Value>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    conditions: Option<RawConditions>,
    #[serde(default)]
    patches: Option<Vec<RawJsonPatch>>,
    #[serde(default)]
    merge_patches: Option<Vec<RawPatchData>>,
    #[serde(default)]
    strategic_patches: Option<Vec<RawPatchData>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConditions {
    #[serde(default)]
    group_resource: Option<String>,
    #[serde(default)]
    resource_name_regex: Option<String>,
    #[serde(default)]
    namespaces: Option<Vec<Value>>,
    #[serde(default)]
    label_selector: Option<RawSelector>,
    #[serde(default)]
    matches: Option<Vec<RawMatch>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSelector {
    #[serde(default)]
    match_labels: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    match_expressions: Option<Vec<RawExpression>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpression {
    key: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonPatch {
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPatchData {
    #[serde(default)]
    patch_data: Option<Value>,
}

impl Modifiers {
    /// Reads a resource modifiers file (YAML, or JSON) named `file` (for messages): the
    /// rules themselves, or the ConfigMap Velero reads them from (`kubectl get cm … -o
    /// yaml`), whose one data key holds them.
    pub fn parse(text: &str, file: &str) -> Result<Modifiers, ModifierError> {
        let whole = |detail: String| ModifierError::File {
            file: file.to_string(),
            detail,
        };
        if let Some(inner) = config_map_data(text).map_err(whole)? {
            let (key, text) = inner;
            return Modifiers::parse(&text, &format!("{file} (data key {key})"));
        }
        let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
            let said = first_line(&e.to_string());
            let hint = if ["`apiVersion`", "`kind`", "`data`"]
                .iter()
                .any(|f| said.contains(&format!("unknown field {f}")))
            {
                ": this looks like a Kubernetes object (a ConfigMap?); give the resource modifiers YAML itself, the value of the ConfigMap's data key"
            } else if said.contains("unknown field") || said.contains("expected") {
                ": a resource modifiers file is a map of `version: v1` and `resourceModifierRules`, as Velero's"
            } else {
                ""
            };
            whole(format!("{said}{hint}"))
        })?;
        match &raw.version {
            Some(Value::String(v)) if v.eq_ignore_ascii_case("v1") => {}
            None | Some(Value::Null) => {
                return Err(whole(
                    "it has no version: resource modifiers files start with `version: v1`".into(),
                ));
            }
            Some(other) => {
                return Err(whole(format!(
                    "version {other} is not one Ferry reads: resource modifiers files are `version: v1`"
                )));
            }
        }
        let rules = raw.resource_modifier_rules.unwrap_or_default();
        if rules.is_empty() {
            return Err(whole(
                "it has no rules: list them under resourceModifierRules (each with conditions and patches, mergePatches or strategicPatches)".into(),
            ));
        }
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let (number, line) = (i + 1, r.referenced.line());
                Rule::parse(r.value, number, line).map_err(|detail| ModifierError::Rule {
                    file: file.to_string(),
                    rule: number,
                    line,
                    detail,
                })
            })
            .collect::<Result<Vec<Rule>, ModifierError>>()?;
        Ok(Modifiers {
            file: file.to_string(),
            rules,
        })
    }

    /// The file the rules came from, as given to [`Modifiers::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (never, for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the rules, in order, to `obj` (the object as it will be created) of
    /// resource `group_resource` (`deployments.apps`, `pods`: see [`group_resource`]).
    /// `source` is the object as the snapshot holds it: its namespace and name are
    /// what the conditions match, as in Velero. Returns one description per change,
    /// for the plan. On error `obj` keeps the changes of the rules before the one
    /// that failed.
    pub fn apply(
        &self,
        obj: &mut Value,
        group_resource: &str,
        source: &ObjRef,
    ) -> Result<Vec<String>, ModifierError> {
        // Conditions look at the object before any rule changed it.
        let origin = (self.rules.len() > 1).then(|| obj.clone());
        let mut changes = Vec::new();
        for rule in &self.rules {
            let seen = origin.as_ref().unwrap_or(&*obj);
            if !rule.conditions.matches(seen, group_resource, source) {
                continue;
            }
            let fail = |detail: String| ModifierError::Apply {
                file: self.file.clone(),
                rule: rule.number,
                line: rule.line,
                object: source.to_string(),
                detail,
            };
            let mut work = obj.clone();
            let mut said = Vec::new();
            match &rule.patches {
                Patches::Json(ops) => match ferry_patch::apply_ops(&mut work, ops) {
                    Ok(()) => said.extend(
                        ops.iter()
                            .filter(|o| !matches!(o, Op::Test { .. }))
                            .map(describe_op),
                    ),
                    // As in Velero: a failed test means the rule does not apply.
                    Err(PatchError::TestFailed { .. }) => continue,
                    Err(e) => {
                        return Err(fail(format!(
                            "{e}. Fix the rule's path, or narrow its conditions (matches, or a test operation first) to the objects that have it"
                        )));
                    }
                },
                Patches::Merge(patches) => {
                    for p in patches {
                        ferry_patch::merge(&mut work, p);
                    }
                    diff(obj, &work, &mut String::new(), &mut said);
                }
                Patches::Strategic(patches) => {
                    if !is_builtin_group(&source.group) {
                        return Err(fail(format!(
                            "a strategic merge patch needs the schema of a built-in kind, and {} is a custom resource (the Kubernetes API refuses strategic patches of them too): use mergePatches for it",
                            source.type_name()
                        )));
                    }
                    for p in patches {
                        ferry_patch::strategic_merge(&mut work, p)
                            .map_err(|e| fail(format!("{e}. Fix the rule's strategicPatches")))?;
                    }
                    diff(obj, &work, &mut String::new(), &mut said);
                }
            }
            *obj = work;
            changes.extend(said.into_iter().map(|c| {
                format!(
                    "resource modifier rule {} (line {}): {c}",
                    rule.number, rule.line
                )
            }));
        }
        Ok(changes)
    }
}

/// The one data key's value of a ConfigMap as Velero keeps resource modifiers in:
/// `None` when `text` is not a ConfigMap; an error when it holds not exactly one key.
fn config_map_data(text: &str) -> Result<Option<(String, String)>, String> {
    #[derive(Deserialize)]
    struct Object {
        kind: Option<String>,
        #[serde(default)]
        data: BTreeMap<String, String>,
    }
    // Not an object with a kind (the rules themselves, or text that does not parse):
    // the rules' own parser says what is wrong.
    let data = match serde_saphyr::from_str::<Object>(text) {
        Ok(o) if o.kind.as_deref() == Some("ConfigMap") => o.data,
        _ => return Ok(None),
    };
    let mut keys = data.into_iter();
    match (keys.next(), keys.next()) {
        (Some(one), None) => Ok(Some(one)),
        (None, _) => Err("this ConfigMap has no data: Velero reads the resource modifiers from its one data key".into()),
        (Some(_), Some(_)) => Err("this ConfigMap has several data keys: Velero reads the resource modifiers from exactly one, so keep only that one (or give the YAML itself)".into()),
    }
}

/// A resource as Velero names it in `groupResource`: the plural, a dot and the group;
/// core resources (group `""`) are the plural alone.
pub fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// The groups of Kubernetes' own kinds, whose schemas say how lists merge.
fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "node.k8s.io"
            | "certificates.k8s.io"
            | "admissionregistration.k8s.io"
            | "apiextensions.k8s.io"
            | "apiregistration.k8s.io"
            | "events.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "resource.k8s.io"
    )
}

/// What is wrong with a regular expression, in one line (the regex crate draws the
/// pattern over several).
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim()
        .strip_prefix("error: ")
        .unwrap_or(last.trim())
        .to_string()
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

impl Rule {
    fn parse(raw: Value, number: usize, line: u64) -> Result<Rule, String> {
        let raw: RawRule = serde_json::from_value(raw).map_err(|e| {
            format!(
                "{e}: a rule has conditions and one of patches, mergePatches or strategicPatches"
            )
        })?;
        let conditions = Conditions::parse(raw.conditions.ok_or_else(|| {
            "it has no conditions: add conditions with at least a groupResource (like deployments.apps, or persistentvolumeclaims)".to_string()
        })?)?;
        let kinds = [
            raw.patches.as_ref().is_some_and(|p| !p.is_empty()),
            raw.merge_patches.as_ref().is_some_and(|p| !p.is_empty()),
            raw.strategic_patches
                .as_ref()
                .is_some_and(|p| !p.is_empty()),
        ];
        let patches = match kinds {
            [true, false, false] => Patches::Json(
                raw.patches
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| json_op(p).map_err(|e| format!("patches item {}: {e}", i + 1)))
                    .collect::<Result<_, _>>()?,
            ),
            [false, true, false] => Patches::Merge(patch_data(
                raw.merge_patches.unwrap_or_default(),
                "mergePatches",
            )?),
            [false, false, true] => Patches::Strategic(patch_data(
                raw.strategic_patches.unwrap_or_default(),
                "strategicPatches",
            )?),
            [false, false, false] => {
                return Err(
                    "it has no patches: add patches (JSON patch), mergePatches or strategicPatches"
                        .into(),
                );
            }
            _ => {
                return Err("it has more than one of patches, mergePatches and strategicPatches: Velero takes one kind per rule; make a rule for each".into());
            }
        };
        Ok(Rule {
            number,
            line,
            conditions,
            patches,
        })
    }
}

/// One JSON patch operation as Velero writes it: `operation`, `path`, `from`, and a
/// `value` given as text (see [`velero_value`]).
fn json_op(p: RawJsonPatch) -> Result<Op, String> {
    let name = p
        .operation
        .filter(|o| !o.is_empty())
        .ok_or("it has no operation: use add, remove, replace, move, copy or test")?;
    let path = p
        .path
        .filter(|o| !o.is_empty())
        .ok_or("it has no path: give the JSON pointer of the field, like /spec/replicas")?;
    if p.from.as_deref() == Some("") {
        return Err(format!(
            "{name} {path} has an empty from: give the JSON pointer to {name} from"
        ));
    }
    let value = velero_value(p.value.as_ref())?;
    Op::new(&name, &path, p.from.as_deref(), Some(value)).map_err(|e| match e {
        PatchError::Invalid(s) => s,
        other => other.to_string(),
    })
}

/// The patches of `mergePatches` or `strategicPatches`: each `patchData` is YAML or
/// JSON text (or, in Ferry, a map written in place) of a map.
fn patch_data(list: Vec<RawPatchData>, what: &str) -> Result<Vec<Value>, String> {
    list.into_iter()
        .enumerate()
        .map(|(i, p)| {
            let n = i + 1;
            let v = match p.patch_data {
                Some(Value::String(text)) => serde_saphyr::from_str::<Value>(&text)
                    .map_err(|e| format!("{what} item {n}: patchData is not YAML, at its {}", first_line(&e.to_string())))?,
                Some(v) => v,
                None => Value::Null,
            };
            if v.is_object() {
                Ok(v)
            } else {
                Err(format!(
                    "{what} item {n}: patchData must be a map of the fields to change (like `metadata: {{labels: {{team: web}}}}`), not {}",
                    if v.is_null() { "nothing".to_string() } else { v.to_string() }
                ))
            }
        })
        .collect()
}

/// A value of a JSON patch or a match, read as Velero reads it: Velero takes it as
/// text and puts it into JSON without quotes when it is a number, `true`, `false`,
/// `null`, or starts with `{` or `[`; text in double quotes is the text inside; other
/// text is a string. A missing value is the empty string. Values written as YAML
/// numbers, booleans, lists or maps are taken as they are.
pub fn velero_value(raw: Option<&Value>) -> Result<Value, String> {
    let text = match raw {
        None | Some(Value::Null) => return Ok(Value::String(String::new())),
        Some(Value::Number(n)) => return Ok(whole_number(n)),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Ok(other.clone()),
    };
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        let inner = &text[1..text.len() - 1];
        return Ok(Value::String(
            serde_json::from_str::<String>(text).unwrap_or_else(|_| inner.to_string()),
        ));
    }
    if text == "null" {
        return Ok(Value::Null);
    }
    if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") {
        return Ok(Value::Bool(text.eq_ignore_ascii_case("true")));
    }
    if text.starts_with('{') || text.starts_with('[') {
        return serde_json::from_str(text).map_err(|e| {
            format!(
                "the value {text:?} starts like JSON but is not ({e}); to set it as text, quote it: \"\\\"{text}\\\"\""
            )
        });
    }
    if text.trim() == text
        && let Ok(Value::Number(n)) = serde_json::from_str::<Value>(text)
    {
        return Ok(whole_number(&n));
    }
    Ok(Value::String(text.to_string()))
}

/// `2.0` as `2`: Velero reads values as text, where YAML's `2.0` is `2`, and
/// Kubernetes' integer fields refuse `2.0`.
fn whole_number(n: &serde_json::Number) -> Value {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        _ => Value::Number(n.clone()),
    }
}

impl Conditions {
    fn parse(raw: RawConditions) -> Result<Conditions, String> {
        let gr = raw.group_resource.filter(|g| !g.is_empty()).ok_or(
            "its conditions have no groupResource: name the resource, like deployments.apps or persistentvolumeclaims (* is every core resource, *.apps every resource of apps, ** every resource)",
        )?;
        let group_resource = Glob::compile(&gr, Some('.'))
            .map_err(|e| format!("groupResource {gr:?} is not a pattern Ferry can read: {e}"))?;
        let namespaces = raw
            .namespaces
            .unwrap_or_default()
            .iter()
            .map(|n| {
                let n = scalar_text(n)
                    .ok_or_else(|| format!("namespaces: {n} is not a namespace name"))?;
                Glob::compile(&n, None)
                    .map_err(|e| format!("namespaces: {n:?} is not a pattern Ferry can read: {e}"))
            })
            .collect::<Result<Vec<Glob>, String>>()?;
        let name = match raw.resource_name_regex.filter(|r| !r.is_empty()) {
            Some(r) => Some(Regex::new(&r).map_err(|e| {
                format!(
                    "resourceNameRegex {r:?} is not a regular expression: {}",
                    regex_error(&e)
                )
            })?),
            None => None,
        };
        let labels = raw.label_selector.map(Selector::parse).transpose()?;
        let matches = raw
            .matches
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let n = i + 1;
                let path = m.path.filter(|p| !p.is_empty()).ok_or_else(|| {
                    format!("matches item {n} has no path: give the JSON pointer of the field, like /spec/replicas")
                })?;
                let pointer = Pointer::parse(&path).map_err(|e| format!("matches item {n}: {}", plain(e)))?;
                let value = velero_value(m.value.as_ref()).map_err(|e| format!("matches item {n}: {e}"))?;
                Ok((pointer, value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Conditions {
            group_resource,
            namespaces,
            name,
            labels,
            matches,
        })
    }

    fn matches(&self, obj: &Value, group_resource: &str, source: &ObjRef) -> bool {
        if let Some(ns) = &source.namespace
            && !self.namespaces.is_empty()
            && !self
                .namespaces
                .iter()
                .any(|g| g.text == "*" || g.matches(ns))
        {
            return false;
        }
        if !self.group_resource.matches(group_resource) {
            return false;
        }
        if let Some(r) = &self.name
            && !r.is_match(&source.name)
        {
            return false;
        }
        if let Some(s) = &self.labels {
            let empty = Map::new();
            let labels = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if !s.matches(labels) {
                return false;
            }
        }
        // Each match is a JSON patch test: a field that is not there does not match.
        self.matches.iter().all(|(p, want)| {
            ferry_patch::apply_ops(
                &mut obj.clone(),
                &[Op::Test {
                    path: p.clone(),
                    value: want.clone(),
                }],
            )
            .is_ok()
        })
    }
}

fn plain(e: PatchError) -> String {
    match e {
        PatchError::Invalid(s) => s,
        other => other.to_string(),
    }
}

/// Text of a YAML scalar (`2` and `true` as written), for names and label values.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------
// Label selectors

#[derive(Debug, Clone)]
struct Selector {
    labels: Vec<(String, String)>,
    expressions: Vec<Expression>,
}

#[derive(Debug, Clone)]
enum Expression {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    fn parse(raw: RawSelector) -> Result<Selector, String> {
        let labels = raw
            .match_labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let v = scalar_text(&v).ok_or_else(|| {
                    format!("labelSelector: the value of matchLabels {k} must be text, not {v}")
                })?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let expressions = raw
            .match_expressions
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                if e.key.is_empty() {
                    return Err("labelSelector: a matchExpressions item has no key".to_string());
                }
                let values = e
                    .values
                    .unwrap_or_default()
                    .iter()
                    .map(|v| {
                        scalar_text(v).ok_or_else(|| {
                            format!("labelSelector: the values of {} must be text, not {v}", e.key)
                        })
                    })
                    .collect::<Result<Vec<String>, String>>()?;
                let (key, op) = (e.key, e.operator);
                match op.as_str() {
                    "In" | "NotIn" if values.is_empty() => Err(format!(
                        "labelSelector: {key} {op} needs values: list them under values"
                    )),
                    "Exists" | "DoesNotExist" if !values.is_empty() => Err(format!(
                        "labelSelector: {key} {op} takes no values: remove them"
                    )),
                    "In" => Ok(Expression::In(key, values)),
                    "NotIn" => Ok(Expression::NotIn(key, values)),
                    "Exists" => Ok(Expression::Exists(key)),
                    "DoesNotExist" => Ok(Expression::DoesNotExist(key)),
                    other => Err(format!(
                        "labelSelector: operator {other:?} of {key} is not one of In, NotIn, Exists, DoesNotExist"
                    )),
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Selector {
            labels,
            expressions,
        })
    }

    fn matches(&self, labels: &Map<String, Value>) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.labels.iter().all(|(k, v)| get(k) == Some(v.as_str()))
            && self.expressions.iter().all(|e| match e {
                Expression::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|w| w == v)),
                Expression::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|w| w == v)),
                Expression::Exists(k) => labels.contains_key(k),
                Expression::DoesNotExist(k) => !labels.contains_key(k),
            })
    }
}

// ---------------------------------------------------------------------------------
// Globs, as Velero matches groupResource and namespaces

/// A glob: `*` any text (not crossing the separator, if there is one), `**` any text,
/// `?` one character, `[abc]`, `[a-z]`, `[!abc]` one of (or none of) those, `{a,b}`
/// either pattern, `\` the next character as it is.
#[derive(Debug, Clone)]
struct Glob {
    text: String,
    regex: Regex,
}

impl Glob {
    fn compile(text: &str, separator: Option<char>) -> Result<Glob, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let body = glob_sequence(&chars, &mut i, 0, separator)?;
        let regex = Regex::new(&format!("^(?s:{body})$")).map_err(|e| regex_error(&e))?;
        Ok(Glob {
            text: text.to_string(),
            regex,
        })
    }

    fn matches(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

fn escape_char(c: char) -> String {
    if c.is_ascii_punctuation() {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

/// Translates glob text from `chars[*i]` into a regular expression, up to the end, or
/// (inside `{}`, `depth` > 0) up to the next `,` or `}`.
fn glob_sequence(
    chars: &[char],
    i: &mut usize,
    depth: usize,
    separator: Option<char>,
) -> Result<String, String> {
    let one = match separator {
        Some(s) => format!("[^{}]", escape_char(s)),
        None => ".".to_string(),
    };
    let mut out = String::new();
    while let Some(&c) = chars.get(*i) {
        match c {
            '*' => {
                let mut n = 0;
                while chars.get(*i) == Some(&'*') {
                    n += 1;
                    *i += 1;
                }
                // `**` crosses the separator, `*` does not.
                if n > 1 {
                    out.push_str(".*");
                } else {
                    out.push_str(&format!("{one}*"));
                }
                continue;
            }
            '?' => out.push_str(&one),
            '[' => {
                *i += 1;
                let negated = chars.get(*i) == Some(&'!');
                if negated {
                    *i += 1;
                }
                let mut class = String::new();
                loop {
                    match chars.get(*i) {
                        None => return Err("a [ is not closed".into()),
                        Some(']') if !class.is_empty() => break,
                        Some('\\') => {
                            *i += 1;
                            let c = chars.get(*i).ok_or("it ends with \\")?;
                            class.push_str(&escape_char(*c));
                        }
                        Some('-') if !class.is_empty() && chars.get(*i + 1) != Some(&']') => {
                            class.push('-');
                        }
                        Some(c) => class.push_str(&escape_char(*c)),
                    }
                    *i += 1;
                }
                out.push_str(&format!("[{}{class}]", if negated { "^" } else { "" }));
            }
            '{' => {
                *i += 1;
                let mut alternatives = Vec::new();
                loop {
                    alternatives.push(glob_sequence(chars, i, depth + 1, separator)?);
                    match chars.get(*i) {
                        Some(',') => *i += 1,
                        Some('}') => break,
                        _ => return Err("a { is not closed".into()),
                    }
                }
                out.push_str(&format!("(?:{})", alternatives.join("|")));
            }
            ',' | '}' if depth > 0 => return Ok(out),
            '\\' => {
                *i += 1;
                let c = chars.get(*i).ok_or("it ends with \\")?;
                out.push_str(&escape_char(*c));
            }
            c => out.push_str(&escape_char(c)),
        }
        *i += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Changes in words

/// A value as a change shows it: compact JSON, cut at 80 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 80 {
        s
    } else {
        format!("{}...", s.chars().take(77).collect::<String>())
    }
}

fn describe_op(op: &Op) -> String {
    match op {
        Op::Add { path, value } => format!("add {} at {path}", short(value)),
        Op::Replace { path, value } => format!("replace {path} with {}", short(value)),
        other => other.to_string(),
    }
}

/// What changed from `a` to `b`, as operations (`replace /x with 1`, `remove /y`, `add
/// "z" at /w`). Lists whose items all have distinct names are compared by name.
fn diff(a: &Value, b: &Value, at: &mut String, out: &mut Vec<String>) {
    if a == b {
        return;
    }
    let len = at.len();
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                at.push('/');
                at.push_str(&ferry_patch::escape(k));
                match y.get(k) {
                    Some(w) => diff(v, w, at, out),
                    None => out.push(format!("remove {at}")),
                }
                at.truncate(len);
            }
            for (k, w) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                out.push(format!(
                    "add {} at {at}/{}",
                    short(w),
                    ferry_patch::escape(k)
                ));
            }
        }
        (Value::Array(x), Value::Array(y)) => match (named(x), named(y)) {
            (Some(xn), Some(yn)) if x.len() != y.len() || xn != yn => {
                for (i, n) in xn.iter().enumerate() {
                    if !yn.contains(n) {
                        out.push(format!("remove {at}/{i} (name {n})"));
                    }
                }
                for (j, n) in yn.iter().enumerate() {
                    match xn.iter().position(|m| m == n) {
                        Some(i) => {
                            at.push_str(&format!("/{j}"));
                            diff(&x[i], &y[j], at, out);
                            at.truncate(len);
                        }
                        None => out.push(format!("add {} at {at}/{j}", short(&y[j]))),
                    }
                }
            }
            _ => {
                for (i, (v, w)) in x.iter().zip(y).enumerate() {
                    at.push_str(&format!("/{i}"));
                    diff(v, w, at, out);
                    at.truncate(len);
                }
                for (i, w) in y.iter().enumerate().skip(x.len()) {
                    out.push(format!("add {} at {at}/{i}", short(w)));
                }
                for i in (y.len()..x.len()).rev() {
                    out.push(format!("remove {at}/{i}"));
                }
            }
        },
        _ => out.push(format!(
            "replace {} with {}",
            if at.is_empty() {
                "the whole object"
            } else {
                at.as_str()
            },
            short(b)
        )),
    }
}

/// The names of a list's items, when every item is an object with a distinct name.
fn named(items: &[Value]) -> Option<Vec<&str>> {
    let names: Vec<&str> = items
        .iter()
        .map(|i| i.get("name").and_then(Value::as_str))
        .collect::<Option<_>>()?;
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == names.len()).then_some(names)
}

#[cfg(test)]
#[path = "modifiers_tests.rs"]
mod tests;

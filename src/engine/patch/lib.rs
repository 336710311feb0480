//! Patches on JSON documents, applied the way the Kubernetes API applies them:
//!
//! - [`json_patch`] (and [`Op`], [`apply_ops`]): JSON patch, RFC 6902: `add`, `remove`,
//!   `replace`, `move`, `copy` and `test`, all or nothing;
//! - [`merge`]: JSON merge patch, RFC 7386;
//! - [`strategic_merge`]: Kubernetes' strategic merge patch, without a schema: the lists
//!   Kubernetes merges (containers, volumes, env, ports...) are merged item by item on
//!   their key (see [`ListStrategy`]), other lists are replaced, and the `$patch`,
//!   `$retainKeys`, `$deleteFromPrimitiveList/` and `$setElementOrder/` directives are
//!   honoured.
//!
//! Owns patching `serde_json::Value`s and nothing else: no files, clusters or stores.
//! Nothing here panics on any document or patch; a patch that does not apply is an
//! error that says why, and leaves the document as it was.

use std::fmt;

use serde_json::{Map, Value};

/// Why a patch could not be applied. The document is left as it was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch itself is malformed (not a list of operations, a path that is not a
    /// JSON pointer, an unknown directive...).
    #[error("the patch is not valid: {0}")]
    Invalid(String),
    /// An operation does not fit the document (its path does not exist, an index is
    /// past the end of a list...).
    #[error("cannot {op} {path}: {why}")]
    NotApplicable {
        op: &'static str,
        path: String,
        why: String,
    },
    /// A `test` operation found another value.
    #[error("test {path} failed: expected {expected}, found {}", found.as_ref().map(Value::to_string).unwrap_or_else(|| "nothing".into()))]
    TestFailed {
        path: String,
        expected: Value,
        found: Option<Value>,
    },
}

type Result<T> = std::result::Result<T, PatchError>;

// ---------------------------------------------------------------------------------
// JSON pointers (RFC 6901)

/// A JSON pointer (RFC 6901): `""` is the whole document, `/spec/replicas` a field,
/// `/spec/containers/0` an item of a list; `~1` stands for `/` and `~0` for `~` in a
/// name (`/metadata/annotations/example.com~1owner`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// Reads a pointer; one that does not start with `/` (other than the empty one), or
    /// with a `~` not followed by `0` or `1`, is [`PatchError::Invalid`].
    pub fn parse(text: &str) -> Result<Pointer> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PatchError::Invalid(format!(
                "{text:?} is not a JSON pointer: it must start with / (like /spec/replicas)"
            )));
        };
        let tokens = rest
            .split('/')
            .map(|t| unescape(t, text))
            .collect::<Result<Vec<String>>>()?;
        Ok(Pointer {
            text: text.to_string(),
            tokens,
        })
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it points at the whole document.
    pub fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The names and indexes it goes through, unescaped.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The value it points at in `doc`, if there is one.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        walk(doc, &self.tokens)
    }

    /// The pointer to the parent of what this points at (the root's is none).
    fn parent(&self) -> Option<(&[String], &str)> {
        let (last, parent) = self.tokens.split_last()?;
        Some((parent, last.as_str()))
    }

    /// Whether `other` points inside what this points at (not at it).
    fn is_proper_prefix_of(&self, other: &Pointer) -> bool {
        other.tokens.len() > self.tokens.len() && other.tokens.starts_with(&self.tokens)
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            f.write_str("the whole document")
        } else {
            f.write_str(&self.text)
        }
    }
}

fn unescape(token: &str, whole: &str) -> Result<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => {
                    return Err(PatchError::Invalid(format!(
                        "{whole:?} is not a JSON pointer: write ~0 for ~ and ~1 for / in a name"
                    )));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Escapes a name for a JSON pointer (`/` as `~1`, `~` as `~0`).
pub fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// `tokens` joined into pointer text.
fn pointer_text(tokens: &[String]) -> String {
    tokens.iter().map(|t| format!("/{}", escape(t))).collect()
}

/// The position a token names in a list of `len` items. `-` is the end (only where
/// an item is added); negative indexes count from the end, as the Kubernetes API's
/// JSON patch library allows.
fn index(token: &str, len: usize, adding: bool) -> Option<usize> {
    let size = if adding { len + 1 } else { len };
    if token == "-" {
        return adding.then_some(len);
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    let i: i64 = token.parse().ok()?;
    let i = if i < 0 {
        i64::try_from(size).ok()?.checked_add(i)?
    } else {
        i
    };
    let i = usize::try_from(i).ok()?;
    (i < size).then_some(i)
}

fn walk<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    tokens.iter().try_fold(doc, |node, t| match node {
        Value::Object(m) => m.get(t),
        Value::Array(a) => a.get(index(t, a.len(), false)?),
        _ => None,
    })
}

fn walk_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    tokens.iter().try_fold(doc, |node, t| match node {
        Value::Object(m) => m.get_mut(t),
        Value::Array(a) => {
            let i = index(t, a.len(), false)?;
            a.get_mut(i)
        }
        _ => None,
    })
}

/// Why the parent of a path cannot hold it, in words: the deepest part of `parent`
/// that exists, and what is there.
fn missing_parent(doc: &Value, parent: &[String]) -> String {
    for n in (0..=parent.len()).rev() {
        let Some(v) = walk(doc, &parent[..n]) else {
            continue;
        };
        let here = if n == 0 {
            "the document".to_string()
        } else {
            pointer_text(&parent[..n])
        };
        return match v {
            Value::Object(_) | Value::Array(_) if n < parent.len() => {
                format!("{} does not exist", pointer_text(&parent[..=n]))
            }
            other => format!("{here} is {}, not an object or a list", kind_of(other)),
        };
    }
    format!("{} does not exist", pointer_text(parent))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------
// JSON patch (RFC 6902)

/// One operation of a JSON patch.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Adds (or sets) a field, or inserts an item into a list (`-` appends).
    Add { path: Pointer, value: Value },
    /// Removes what is at the path, which must exist.
    Remove { path: Pointer },
    /// Replaces what is at the path, which must exist.
    Replace { path: Pointer, value: Value },
    /// Removes what is at `from` and adds it at `path`.
    Move { from: Pointer, path: Pointer },
    /// Adds a copy of what is at `from` at `path`.
    Copy { from: Pointer, path: Pointer },
    /// Fails the whole patch unless the path holds this value (a missing field counts
    /// as `null`).
    Test { path: Pointer, value: Value },
}

impl Op {
    /// The operation's name as JSON patch spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Add { .. } => "add",
            Op::Remove { .. } => "remove",
            Op::Replace { .. } => "replace",
            Op::Move { .. } => "move",
            Op::Copy { .. } => "copy",
            Op::Test { .. } => "test",
        }
    }

    /// Where it acts.
    pub fn path(&self) -> &Pointer {
        match self {
            Op::Add { path, .. }
            | Op::Remove { path }
            | Op::Replace { path, .. }
            | Op::Move { path, .. }
            | Op::Copy { path, .. }
            | Op::Test { path, .. } => path,
        }
    }

    /// Builds an operation from its name, path, source (`move`, `copy`) and value
    /// (`add`, `replace`, `test`). Names are matched without regard to case.
    pub fn new(name: &str, path: &str, from: Option<&str>, value: Option<Value>) -> Result<Op> {
        let path = Pointer::parse(path)?;
        let name = name.to_ascii_lowercase();
        let need = |value: Option<Value>| {
            value.ok_or_else(|| PatchError::Invalid(format!("{name} {path} has no value")))
        };
        let from = || -> Result<Pointer> {
            Pointer::parse(from.ok_or_else(|| {
                PatchError::Invalid(format!(
                    "{name} {path} has no `from` (the path to {name} from)"
                ))
            })?)
        };
        Ok(match name.as_str() {
            "add" => Op::Add {
                value: need(value)?,
                path,
            },
            "remove" => Op::Remove { path },
            "replace" => Op::Replace {
                value: need(value)?,
                path,
            },
            "move" => Op::Move {
                from: from()?,
                path,
            },
            "copy" => Op::Copy {
                from: from()?,
                path,
            },
            "test" => Op::Test {
                value: need(value)?,
                path,
            },
            other => {
                return Err(PatchError::Invalid(format!(
                    "unknown operation {other:?}: use add, remove, replace, move, copy or test"
                )));
            }
        })
    }

    /// Reads an operation as JSON patch writes it: `{"op": "replace", "path":
    /// "/spec/replicas", "value": 0}`.
    pub fn from_json(op: &Value) -> Result<Op> {
        let Some(m) = op.as_object() else {
            return Err(PatchError::Invalid(format!(
                "an operation must be an object with op and path, not {op}"
            )));
        };
        let name = m
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Invalid(format!("an operation has no op: {op}")))?;
        let path = m
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Invalid(format!("an operation has no path: {op}")))?;
        let from = match m.get("from") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                return Err(PatchError::Invalid(format!(
                    "the from of an operation must be a JSON pointer, not {other}"
                )));
            }
        };
        Op::new(name, path, from, m.get("value").cloned())
    }

    /// Applies the operation to `doc`. On error `doc` may be half changed: use
    /// [`apply_ops`] for all-or-nothing.
    fn apply(&self, doc: &mut Value) -> Result<()> {
        match self {
            Op::Add { path, value } => add(doc, path, value.clone(), "add"),
            Op::Remove { path } => remove(doc, path, "remove").map(drop),
            Op::Replace { path, value } => {
                let slot = match path.parent() {
                    None => doc,
                    Some((parent, _)) => {
                        if walk(doc, parent).is_none_or(|p| !p.is_object() && !p.is_array()) {
                            return Err(not_applicable(
                                "replace",
                                path,
                                missing_parent(doc, parent),
                            ));
                        }
                        walk_mut(doc, &path.tokens).ok_or_else(|| {
                            not_applicable("replace", path, format!("{path} does not exist"))
                        })?
                    }
                };
                *slot = value.clone();
                Ok(())
            }
            Op::Move { from, path } => {
                if from == path {
                    return match from.get(doc) {
                        Some(_) => Ok(()),
                        None => Err(not_applicable(
                            "move",
                            from,
                            format!("{from} does not exist"),
                        )),
                    };
                }
                if from.is_proper_prefix_of(path) {
                    return Err(PatchError::Invalid(format!(
                        "move {from} to {path}: a value cannot move inside itself"
                    )));
                }
                let v = remove(doc, from, "move")?;
                add(doc, path, v, "move")
            }
            Op::Copy { from, path } => {
                let v = from.get(doc).cloned().ok_or_else(|| {
                    not_applicable("copy", from, format!("{from} does not exist"))
                })?;
                add(doc, path, v, "copy")
            }
            Op::Test { path, value } => {
                let found = path.get(doc);
                let pass = match found {
                    Some(v) => json_eq(v, value),
                    // A missing field is null; a missing parent is nothing.
                    None => {
                        value.is_null()
                            && path
                                .parent()
                                .is_some_and(|(p, _)| walk(doc, p).is_some_and(Value::is_object))
                    }
                };
                if pass {
                    Ok(())
                } else {
                    Err(PatchError::TestFailed {
                        path: path.to_string(),
                        expected: value.clone(),
                        found: found.cloned(),
                    })
                }
            }
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Add { path, value } => write!(f, "add {value} at {path}"),
            Op::Remove { path } => write!(f, "remove {path}"),
            Op::Replace { path, value } => write!(f, "replace {path} with {value}"),
            Op::Move { from, path } => write!(f, "move {from} to {path}"),
            Op::Copy { from, path } => write!(f, "copy {from} to {path}"),
            Op::Test { path, value } => write!(f, "test that {path} is {value}"),
        }
    }
}

fn not_applicable(op: &'static str, path: &Pointer, why: String) -> PatchError {
    PatchError::NotApplicable {
        op,
        path: path.to_string(),
        why,
    }
}

fn add(doc: &mut Value, path: &Pointer, value: Value, op: &'static str) -> Result<()> {
    let Some((parent, last)) = path.parent() else {
        *doc = value;
        return Ok(());
    };
    let why = missing_parent(doc, parent);
    match walk_mut(doc, parent) {
        Some(Value::Object(m)) => {
            m.insert(last.to_string(), value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let len = a.len();
            let i = index(last, len, true).ok_or_else(|| {
                not_applicable(
                    op,
                    path,
                    format!("{last:?} is not a position in the list of {len} item(s) (0 to {len}, or - for the end)"),
                )
            })?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(not_applicable(op, path, why)),
    }
}

fn remove(doc: &mut Value, path: &Pointer, op: &'static str) -> Result<Value> {
    let Some((parent, last)) = path.parent() else {
        return Err(not_applicable(
            op,
            path,
            "the whole document cannot be removed".into(),
        ));
    };
    let why = missing_parent(doc, parent);
    match walk_mut(doc, parent) {
        Some(Value::Object(m)) => m
            .remove(last)
            .ok_or_else(|| not_applicable(op, path, format!("{path} does not exist"))),
        Some(Value::Array(a)) => {
            let len = a.len();
            let i = index(last, len, false).ok_or_else(|| {
                not_applicable(
                    op,
                    path,
                    format!("{last:?} is not an item of the list of {len} item(s)"),
                )
            })?;
            Ok(a.remove(i))
        }
        _ => Err(not_applicable(op, path, why)),
    }
}

/// Equality as JSON patch's `test` sees it: numbers by value (`1` is `1.0`), objects
/// whatever the order of their fields.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Reads a JSON patch: a list of operations.
pub fn parse_json_patch(patch: &Value) -> Result<Vec<Op>> {
    patch
        .as_array()
        .ok_or_else(|| PatchError::Invalid("a JSON patch must be a list of operations".into()))?
        .iter()
        .map(Op::from_json)
        .collect()
}

/// Applies operations in order, all or nothing: on error `doc` is left as it was.
pub fn apply_ops(doc: &mut Value, ops: &[Op]) -> Result<()> {
    let mut work = doc.clone();
    for op in ops {
        op.apply(&mut work)?;
    }
    *doc = work;
    Ok(())
}

/// RFC 6902: reads `patch` (a list of operations) and applies it to `doc`, all or
/// nothing.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<()> {
    apply_ops(doc, &parse_json_patch(patch)?)
}

// ---------------------------------------------------------------------------------
// JSON merge patch (RFC 7386)

/// RFC 7386: objects merge field by field, `null` removes a field, anything else
/// (lists included) replaces what was there.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Strategic merge patch

/// How a strategic merge patch treats a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch's list replaces the document's (most lists: `args`, `tolerations`...).
    Replace,
    /// Items are matched on this field and merged; new ones are appended.
    MergeByKey(&'static str),
    /// A list of plain values: the patch's values are added to the document's.
    MergeValues,
}

/// The strategy Kubernetes' built-in types declare for a list `field` held by a map
/// that is itself the value of `parent` (the field's name, or for an item of a list
/// the list's name; `""` at the top of the object).
pub fn list_strategy(field: &str, parent: &str) -> ListStrategy {
    use ListStrategy::*;
    let container = matches!(
        parent,
        "containers" | "initContainers" | "ephemeralContainers"
    );
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => MergeByKey("name"),
        "env" if container => MergeByKey("name"),
        "volumeMounts" if container => MergeByKey("mountPath"),
        "volumeDevices" if container => MergeByKey("devicePath"),
        "ports" if container => MergeByKey("containerPort"),
        // A Service's ports.
        "ports" if parent == "spec" => MergeByKey("port"),
        "hostAliases" | "podIPs" | "hostIPs" => MergeByKey("ip"),
        "topologySpreadConstraints" => MergeByKey("topologyKey"),
        "conditions" => MergeByKey("type"),
        "ownerReferences" if parent == "metadata" => MergeByKey("uid"),
        // A ServiceAccount's token secrets.
        "secrets" if parent.is_empty() => MergeByKey("name"),
        "finalizers" if parent == "metadata" => MergeValues,
        "podCIDRs" => MergeValues,
        _ => Replace,
    }
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Kubernetes' strategic merge patch, without the type's schema: like [`merge`], but
/// the lists [`list_strategy`] names are merged item by item on their key, and
/// directives apply:
///
/// - `$patch: replace` in a map replaces the map; as an item of a list, the list
///   becomes the patch's other items;
/// - `$patch: delete` in a map empties it; in an item of a keyed list, removes the
///   item with that key;
/// - `$retainKeys: [..]` keeps only those fields of the map (before merging);
/// - `$deleteFromPrimitiveList/FIELD: [..]` removes those values from the list FIELD;
/// - `$setElementOrder/FIELD: [..]` orders the merged list FIELD as Kubernetes does:
///   the items it names in its order, the document's other items in their order, each
///   before the next named item when it was before that item in the document.
///
/// The patch must be an object. Without an order, items keep their place and new ones
/// are appended.
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<()> {
    let Value::Object(p) = patch else {
        return Err(PatchError::Invalid(format!(
            "a strategic merge patch must be an object, not {}",
            kind_of(patch)
        )));
    };
    let mut work = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_map(&mut work, p, "")?;
    *target = Value::Object(work);
    Ok(())
}

fn merge_map(orig: &mut Map<String, Value>, patch: &Map<String, Value>, here: &str) -> Result<()> {
    match patch.get(DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "replace" => {
            let mut fresh = Map::new();
            let rest: Map<String, Value> = patch
                .iter()
                .filter(|(k, _)| k.as_str() != DIRECTIVE)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            merge_map(&mut fresh, &rest, here)?;
            *orig = fresh;
            return Ok(());
        }
        Some(Value::String(d)) if d == "delete" => {
            orig.clear();
            return Ok(());
        }
        Some(Value::String(d)) if d == "merge" => {}
        Some(other) => {
            return Err(PatchError::Invalid(format!(
                "unknown {DIRECTIVE} directive {other}{}: use replace, delete or merge",
                at(here)
            )));
        }
    }
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        let keys: Vec<&str> = keys
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<&str>>>())
            .ok_or_else(|| {
                PatchError::Invalid(format!(
                    "{RETAIN_KEYS}{} must be a list of field names",
                    at(here)
                ))
            })?;
        if let Some((k, _)) = patch
            .iter()
            .find(|(k, v)| !k.starts_with('$') && !v.is_null() && !keys.contains(&k.as_str()))
        {
            return Err(PatchError::Invalid(format!(
                "the patch sets {k}{} but leaves it out of {RETAIN_KEYS}",
                at(here)
            )));
        }
        orig.retain(|k, _| keys.contains(&k.as_str()));
    }
    // Deletions from lists of values first, so the same patch can add to the list.
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let gone = v.as_array().ok_or_else(|| {
                PatchError::Invalid(format!("{k}{} must be a list of values", at(here)))
            })?;
            if let Some(Value::Array(list)) = orig.get_mut(field) {
                list.retain(|x| !gone.contains(x));
            }
        }
    }
    // The lists to order, as they were before the patch.
    let mut orders: Vec<(&str, &[Value], Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) {
            let order = v
                .as_array()
                .ok_or_else(|| PatchError::Invalid(format!("{k}{} must be a list", at(here))))?;
            let before = match orig.get(field) {
                Some(Value::Array(l)) => l.clone(),
                _ => Vec::new(),
            };
            orders.push((field, order, before));
        }
    }
    for (k, v) in patch {
        // The `$` fields are the directives handled above and below.
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            orig.remove(k);
            continue;
        }
        match (orig.get_mut(k), v) {
            (Some(Value::Object(o)), Value::Object(p)) => merge_map(o, p, k)?,
            (Some(Value::Array(o)), Value::Array(p)) => merge_list(o, p, k, here)?,
            _ => {
                let new = fresh(v, k, here)?;
                orig.insert(k.clone(), new);
            }
        }
    }
    for (field, order, before) in orders {
        let key = match list_strategy(field, here) {
            ListStrategy::MergeByKey(key) => Some(key),
            ListStrategy::MergeValues => None,
            // A replaced list is the patch's own, in its order.
            ListStrategy::Replace => continue,
        };
        if let Some(Value::Array(list)) = orig.get_mut(field) {
            let merged = std::mem::take(list);
            *list = set_element_order(merged, order, &before, key);
        }
    }
    Ok(())
}

/// Orders a merged list as `$setElementOrder` asks (Kubernetes' `normalizeElementOrder`):
/// the items `order` names come in its order; the others (the document's, which the
/// order does not name) keep the order they had in `before`, each going in front of the
/// next named item when it was in front of that item in `before`. Items are known by
/// `key`, or by their value in a list of values.
fn set_element_order(
    merged: Vec<Value>,
    order: &[Value],
    before: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let id = |v: &Value| -> Option<Value> {
        match key {
            Some(k) => v.get(k).cloned(),
            None => Some(v.clone()),
        }
    };
    let place = |list: &[Value], v: &Value| -> Option<usize> {
        let i = id(v)?;
        list.iter().position(|o| id(o).as_ref() == Some(&i))
    };
    let (mut named, mut others): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|v| place(order, v).is_some());
    named.sort_by_key(|v| place(order, v));
    others.sort_by_key(|v| place(before, v).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(named.len() + others.len());
    let (mut named, mut others) = (named.into_iter().peekable(), others.into_iter().peekable());
    loop {
        let take_other = match (others.peek(), named.peek()) {
            (Some(o), Some(n)) => {
                matches!((place(before, o), place(before, n)), (Some(a), Some(b)) if a < b)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_other {
            others.next()
        } else {
            named.next()
        };
        out.extend(next);
    }
    out
}

/// What a patch value becomes where the document has nothing of its kind: directives
/// applied to nothing, `null`s left out.
fn fresh(v: &Value, field: &str, parent: &str) -> Result<Value> {
    Ok(match v {
        Value::Object(p) => {
            let mut m = Map::new();
            merge_map(&mut m, p, field)?;
            Value::Object(m)
        }
        Value::Array(p) => {
            let mut l = Vec::new();
            merge_list(&mut l, p, field, parent)?;
            Value::Array(l)
        }
        other => other.clone(),
    })
}

fn at(here: &str) -> String {
    if here.is_empty() {
        String::new()
    } else {
        format!(" (in {here})")
    }
}

fn merge_list(orig: &mut Vec<Value>, patch: &[Value], field: &str, parent: &str) -> Result<()> {
    let directive = |i: &Value| i.get(DIRECTIVE).cloned();
    // `$patch: replace` as an item: the list becomes the patch's other items.
    if patch
        .iter()
        .any(|i| directive(i).as_ref().and_then(Value::as_str) == Some("replace"))
    {
        let mut out = Vec::new();
        for i in patch.iter().filter(|i| directive(i).is_none()) {
            out.push(fresh(i, field, parent)?);
        }
        *orig = out;
        return Ok(());
    }
    match list_strategy(field, parent) {
        ListStrategy::Replace => {
            if patch.iter().any(|i| directive(i).is_some()) {
                return Err(PatchError::Invalid(format!(
                    "the list {field} is replaced as a whole (it has no merge key): its items cannot carry {DIRECTIVE}"
                )));
            }
            let mut out = Vec::new();
            for i in patch {
                out.push(fresh(i, field, parent)?);
            }
            *orig = out;
        }
        ListStrategy::MergeValues => {
            for i in patch {
                if !orig.contains(i) {
                    orig.push(i.clone());
                }
            }
        }
        ListStrategy::MergeByKey(key) => {
            for item in patch {
                let Some(p) = item.as_object() else {
                    return Err(PatchError::Invalid(format!(
                        "the items of {field} are merged by {key}: {item} is not an object"
                    )));
                };
                let Some(id) = p.get(key) else {
                    return Err(PatchError::Invalid(format!(
                        "an item of {field} has no {key}, which its items are merged by: {item}"
                    )));
                };
                let same = |e: &Value| e.get(key) == Some(id);
                match p.get(DIRECTIVE).map(|d| (d.as_str(), d)) {
                    Some((Some("delete"), _)) => orig.retain(|e| !same(e)),
                    None => match orig.iter_mut().find(|e| same(e)) {
                        Some(Value::Object(o)) => merge_map(o, p, field)?,
                        Some(other) => *other = fresh(item, field, parent)?,
                        None => orig.push(fresh(item, field, parent)?),
                    },
                    Some((_, d)) => {
                        return Err(PatchError::Invalid(format!(
                            "{DIRECTIVE} {d} in an item of {field}: an item can only be deleted ({DIRECTIVE}: delete), or the list replaced ({DIRECTIVE}: replace)"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

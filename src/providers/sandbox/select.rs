//! Label and field selectors as list and watch requests give them
//! (`labelSelector=app=web,tier in (a,b),!legacy`, `fieldSelector=metadata.name=x`).
//!
//! Owns parsing and matching; knows nothing of HTTP or the store.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Term>);

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unbalanced parenthesis in {s:?}"));
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parenthesis in {s:?}"));
    }
    out.push(&s[start..]);
    Ok(out)
}

fn check_key(k: &str, whole: &str) -> Result<String, String> {
    let ok = !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(k.to_string())
    } else {
        Err(format!("invalid label key {k:?} in selector {whole:?}"))
    }
}

fn check_value(v: &str, whole: &str) -> Result<String, String> {
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("invalid label value {v:?} in selector {whole:?}"))
    }
}

fn set_op(term: &str, op: &str) -> Option<(String, String)> {
    // "key in (a,b)" or "key in(a,b)"
    let idx = term.find(&format!(" {op}"))?;
    let key = term[..idx].trim();
    let rest = term[idx + op.len() + 1..].trim();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    Some((key.to_string(), inner.to_string()))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(LabelSelector::default());
        }
        let mut terms = Vec::new();
        for raw in split_terms(s)? {
            let t = raw.trim();
            if t.is_empty() {
                return Err(format!("empty term in selector {s:?}"));
            }
            let values = |inner: &str| -> Result<Vec<String>, String> {
                inner.split(',').map(|v| check_value(v.trim(), s)).collect()
            };
            let term = if let Some((k, inner)) = set_op(t, "notin") {
                Term::NotIn(check_key(&k, s)?, values(&inner)?)
            } else if let Some((k, inner)) = set_op(t, "in") {
                Term::In(check_key(&k, s)?, values(&inner)?)
            } else if let Some((k, v)) = t.split_once("!=") {
                Term::Ne(check_key(k.trim(), s)?, check_value(v.trim(), s)?)
            } else if let Some((k, v)) = t.split_once("==") {
                Term::Eq(check_key(k.trim(), s)?, check_value(v.trim(), s)?)
            } else if let Some((k, v)) = t.split_once('=') {
                Term::Eq(check_key(k.trim(), s)?, check_value(v.trim(), s)?)
            } else if let Some(k) = t.strip_prefix('!') {
                Term::NotExists(check_key(k.trim(), s)?)
            } else {
                Term::Exists(check_key(t, s)?)
            };
            terms.push(term);
        }
        Ok(LabelSelector(terms))
    }

    /// True when the object's `metadata.labels` satisfy every term.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|t| match t {
            Term::Eq(k, v) => get(k) == Some(v.as_str()),
            Term::Ne(k, v) => get(k) != Some(v.as_str()),
            Term::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Term::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Term::Exists(k) => get(k).is_some(),
            Term::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector: `path=value` and `path!=value` terms over dotted paths
/// (`metadata.name`, `metadata.namespace`, `status.phase`, `spec.nodeName`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(FieldSelector::default());
        }
        let mut terms = Vec::new();
        for t in s.split(',') {
            let t = t.trim();
            let (path, eq, value) = if let Some((p, v)) = t.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = t.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = t.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid field selector term {t:?}: use field=value"
                ));
            };
            let path = path.trim();
            if path.is_empty() {
                return Err(format!("invalid field selector term {t:?}"));
            }
            terms.push((path.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, eq, value)| {
            let mut cur = object;
            for part in path.split('.') {
                cur = &cur[part];
            }
            let actual = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_operators() {
        let o = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}}});
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=db",
            "tier in (front,back)",
            "tier notin (back)",
            "app",
            "!legacy",
            "app=web,tier in (front), !legacy",
            "missing notin (x)",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        let no = [
            "app=db",
            "tier in (back)",
            "tier notin (front)",
            "legacy",
            "!app",
            "app!=web",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        for bad in ["app=(x", "a b c=d", "=x", "app=x,"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selector() {
        let o =
            json!({"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}});
        let f = FieldSelector::parse("metadata.name=a,metadata.namespace!=x").unwrap();
        assert!(f.matches(&o));
        assert!(
            !FieldSelector::parse("status.phase=Pending")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}

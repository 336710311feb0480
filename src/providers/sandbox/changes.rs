//! What changed since each controller last ran, so that a pass of the control loop runs
//! only the controllers with something to look at, and each only where it must look.
//!
//! The control loop (`controllers.rs`) reads the store's change stream. A change to an
//! object of a kind a controller reads puts the object's namespace in that controller's
//! [`Scope`]; a change to a cluster-scoped object (a node, a volume, a class) may matter
//! in every namespace, and makes the scope [`Scope::All`]. A controller that runs takes
//! its scope and leaves it empty; its own writes come back through the stream and give it
//! one more look, which finds nothing to do once things have settled.
//!
//! Controllers stay level-based: they read objects as they are, not the changes. Whenever
//! the loop cannot know what changed (its first pass after a start, a change stream that
//! lagged behind) every scope is `All`.
//!
//! Owns the scopes and their bookkeeping. Must not know what any controller does.

use std::collections::BTreeSet;

use serde_json::Value;

use super::store::{Key, Store};

/// A kind of object, as the store keys it: API group and resource (plural).
pub type Kind = (&'static str, &'static str);

/// Where a controller must look in its next run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Nothing it reads changed.
    #[default]
    Clean,
    /// Objects it reads changed in these namespaces only.
    Namespaces(BTreeSet<String>),
    /// Anything may have changed.
    All,
}

impl Scope {
    /// Notes a change in `namespace` (empty for a cluster-scoped object, which may
    /// matter anywhere).
    pub fn add(&mut self, namespace: &str) {
        match self {
            Scope::All => {}
            _ if namespace.is_empty() => *self = Scope::All,
            Scope::Namespaces(set) => {
                if !set.contains(namespace) {
                    set.insert(namespace.to_string());
                }
            }
            Scope::Clean => *self = Scope::Namespaces(BTreeSet::from([namespace.to_string()])),
        }
    }

    pub fn is_clean(&self) -> bool {
        matches!(self, Scope::Clean)
    }

    /// The objects of `group`/`plural` within the scope, by reference, ordered by
    /// namespace and name (cluster-scoped kinds are only ever in an `All` scope).
    pub fn objects<'a>(
        &'a self,
        store: &'a Store,
        group: &'a str,
        plural: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let namespaces: Vec<Option<&'a str>> = match self {
            Scope::Clean => Vec::new(),
            Scope::Namespaces(set) => set.iter().map(|n| Some(n.as_str())).collect(),
            Scope::All => vec![None],
        };
        namespaces
            .into_iter()
            .flat_map(move |ns| store.list(group, plural, ns).map(|(_, v)| v))
    }
}

/// The scopes of a fixed list of controllers, each described by the kinds it reads.
#[derive(Debug)]
pub struct Pending {
    reads: Vec<&'static [Kind]>,
    scopes: Vec<Scope>,
}

impl Pending {
    /// Scopes for controllers reading `reads` (one entry per controller), all `All`: at
    /// a start, anything may have changed while the sandbox was not running.
    pub fn new(reads: Vec<&'static [Kind]>) -> Pending {
        let scopes = vec![Scope::All; reads.len()];
        Pending { reads, scopes }
    }

    /// Notes a change to the object under `key` for every controller that reads its kind.
    pub fn changed(&mut self, key: &Key) {
        for (reads, scope) in self.reads.iter().zip(&mut self.scopes) {
            if reads
                .iter()
                .any(|(g, p)| *g == key.group && *p == key.resource)
            {
                scope.add(&key.namespace);
            }
        }
    }

    /// Makes controller `i` look everywhere in its next run.
    pub fn everywhere(&mut self, i: usize) {
        if let Some(scope) = self.scopes.get_mut(i) {
            *scope = Scope::All;
        }
    }

    /// Makes every controller look everywhere (the change stream lagged).
    pub fn everything(&mut self) {
        self.scopes.fill(Scope::All);
    }

    /// Takes controller `i`'s scope, leaving it clean.
    pub fn take(&mut self, i: usize) -> Scope {
        self.scopes
            .get_mut(i)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// True when no controller has anything to look at.
    pub fn is_clean(&self) -> bool {
        self.scopes.iter().all(Scope::is_clean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventType;
    use serde_json::json;

    #[test]
    fn scopes_grow_from_namespaces_to_all() {
        let mut s = Scope::Clean;
        assert!(s.is_clean());
        s.add("a");
        s.add("b");
        s.add("a");
        assert_eq!(
            s,
            Scope::Namespaces(BTreeSet::from(["a".to_string(), "b".to_string()]))
        );
        s.add("");
        assert_eq!(s, Scope::All);
        s.add("c");
        assert_eq!(s, Scope::All);
    }

    #[test]
    fn objects_in_scope_are_those_of_its_namespaces() {
        let mut store = Store::new();
        for (ns, name) in [("a", "x"), ("b", "y"), ("c", "z")] {
            let obj = json!({"metadata": {"name": name, "namespace": ns}});
            store.put(Key::new("", "secrets", ns, name), obj, EventType::Added);
        }
        let names = |s: &Scope| -> Vec<String> {
            s.objects(&store, "", "secrets")
                .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let mut scope = Scope::Clean;
        assert!(names(&scope).is_empty());
        scope.add("c");
        scope.add("a");
        assert_eq!(names(&scope), ["x", "z"]);
        assert_eq!(names(&Scope::All), ["x", "y", "z"]);
    }

    #[test]
    fn changes_reach_the_controllers_that_read_their_kind() {
        const SECRETS: &[Kind] = &[("", "secrets"), ("", "serviceaccounts")];
        const NODES: &[Kind] = &[("", "nodes"), ("", "pods")];
        let mut p = Pending::new(vec![SECRETS, NODES]);
        // A start: everything is to be looked at.
        assert_eq!(p.take(0), Scope::All);
        assert_eq!(p.take(1), Scope::All);
        assert!(p.is_clean());
        p.changed(&Key::new("", "serviceaccounts", "app", "sa"));
        p.changed(&Key::new("apps", "deployments", "app", "d"));
        assert_eq!(
            p.take(0),
            Scope::Namespaces(BTreeSet::from(["app".to_string()]))
        );
        assert!(p.is_clean(), "nothing reads deployments");
        p.changed(&Key::new("", "pods", "app", "p"));
        p.changed(&Key::new("", "nodes", "", "worker"));
        assert_eq!(p.take(1), Scope::All);
        p.everything();
        assert_eq!(p.take(0), Scope::All);
        p.everywhere(1);
        assert_eq!(p.take(1), Scope::All);
        assert!(p.is_clean());
    }
}

//! The sandbox's object store: every object as JSON, keyed by API group, resource,
//! namespace and name, with one resourceVersion counter for the whole cluster, a short
//! history of changes for watches, and persistence to a single state file.
//!
//! Owns the map, the counter, the change history and the state file. Must not apply API
//! semantics (validation, defaults, finalizers): `verbs.rs` does that before calling here.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use super::SandboxError;

/// How many changes a watch can replay from an older resourceVersion.
const HISTORY: usize = 10_000;

/// Where an object lives. `namespace` is empty for cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Key {
        Key {
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it. `object` carries the resourceVersion `rv`; it is the
/// stored object itself (shared, never changed in place).
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: Key,
    pub object: Arc<Value>,
    /// The object before a MODIFIED change, so that filtered watches can tell when an
    /// object starts or stops matching.
    pub previous: Option<Arc<Value>>,
}

/// What the state file holds: the counter and every object. Objects are shared with the
/// store, so that taking this copy under the cluster's lock costs a reference per object.
#[derive(Serialize)]
pub struct StateFile {
    #[serde(rename = "resourceVersion")]
    resource_version: u64,
    objects: Vec<StoredObject>,
}

struct StoredObject {
    group: String,
    resource: String,
    object: Arc<Value>,
}

// By hand: serde serializes an `Arc` only with its `rc` feature, which would rebuild
// every crate that uses serde.
impl Serialize for StoredObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("StoredObject", 3)?;
        st.serialize_field("group", &self.group)?;
        st.serialize_field("resource", &self.resource)?;
        st.serialize_field("object", &*self.object)?;
        st.end()
    }
}

/// The state file as read.
#[derive(Deserialize)]
struct LoadedState {
    #[serde(rename = "resourceVersion")]
    resource_version: u64,
    objects: Vec<LoadedObject>,
}

#[derive(Deserialize)]
struct LoadedObject {
    group: String,
    resource: String,
    object: Value,
}

impl StateFile {
    /// The state file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, SandboxError> {
        serde_json::to_vec(self).map_err(|e| SandboxError::Internal(e.to_string()))
    }
}

pub struct Store {
    /// The objects, each shared with the changes (and state copies) that carry it.
    objects: BTreeMap<Key, Arc<Value>>,
    rv: u64,
    /// The oldest resourceVersion a watch may start from.
    history_start: u64,
    history: VecDeque<Arc<Event>>,
    tx: broadcast::Sender<Arc<Event>>,
    dirty: bool,
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one: a
/// temporary file in the same folder, fsync, rename, fsync of the folder. The file is
/// created readable and writable by its owner only (0600): sandbox files hold keys,
/// tokens and Secret values, and are never readable by others, not even for a moment.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SandboxError> {
    let io = |source| SandboxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{file_name}.{}.tmp", hex::encode(suffix)));
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

impl Store {
    pub fn new() -> Store {
        let (tx, _) = broadcast::channel(4096);
        Store {
            objects: BTreeMap::new(),
            rv: 1,
            history_start: 1,
            history: VecDeque::new(),
            tx,
            dirty: true,
        }
    }

    /// A copy of the objects (shared until changed) and the counter, with no history and
    /// no watchers: what a dry-run request changes and throws away.
    pub fn scratch(&self) -> Store {
        let (tx, _) = broadcast::channel(16);
        Store {
            objects: self.objects.clone(),
            rv: self.rv,
            history_start: self.rv,
            history: VecDeque::new(),
            tx,
            dirty: false,
        }
    }

    /// Loads the state file at `path`; a missing file gives an empty store.
    pub fn load(path: &Path) -> Result<Store, SandboxError> {
        let mut store = Store::new();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(source) => {
                return Err(SandboxError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let state: LoadedState =
            serde_json::from_slice(&bytes).map_err(|e| SandboxError::State {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        for o in state.objects {
            let meta = &o.object["metadata"];
            let key = Key::new(
                &o.group,
                &o.resource,
                meta["namespace"].as_str().unwrap_or(""),
                meta["name"].as_str().unwrap_or(""),
            );
            store.objects.insert(key, Arc::new(o.object));
        }
        store.rv = state.resource_version;
        store.history_start = state.resource_version;
        store.dirty = false;
        Ok(store)
    }

    /// A copy of what the state file holds, to encode without the store (the encoding of
    /// a large store takes long, and requests would wait meanwhile; the copy shares the
    /// objects).
    pub fn state(&self) -> StateFile {
        StateFile {
            resource_version: self.rv,
            objects: self
                .objects
                .iter()
                .map(|(k, v)| StoredObject {
                    group: k.group.clone(),
                    resource: k.resource.clone(),
                    object: v.clone(),
                })
                .collect(),
        }
    }

    /// Takes the dirty flag: true when something changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::replace(&mut self.dirty, false)
    }

    /// Marks the store changed, so the next save writes it (after a failed save).
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn history_start(&self) -> u64 {
        self.history_start
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key).map(|v| &**v)
    }

    /// The objects of one resource, in one namespace or all, ordered by namespace and name.
    pub fn list<'a>(
        &'a self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start = Key::new(group, resource, namespace.unwrap_or(""), "");
        let group = group.to_string();
        let resource = resource.to_string();
        let namespace = namespace.map(str::to_string);
        self.objects
            .range(start..)
            .take_while(move |(k, _)| {
                k.group == group
                    && k.resource == resource
                    && namespace.as_ref().is_none_or(|n| *n == k.namespace)
            })
            .map(|(k, v)| (k, &**v))
    }

    /// Every object, for scans such as garbage collection.
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter().map(|(k, v)| (k, &**v))
    }

    /// Stores `object` under `key` with the next resourceVersion and records the change.
    pub fn put(&mut self, key: Key, mut object: Value, kind: EventType) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let stored = Arc::new(object);
        let previous = self.objects.insert(key.clone(), stored.clone());
        self.record(key, stored.clone(), kind, previous);
        Arc::unwrap_or_clone(stored)
    }

    /// Removes the object under `key`, recording a DELETED change.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = Arc::unwrap_or_clone(self.objects.remove(key)?);
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let gone = Arc::new(object);
        self.record(key.clone(), gone.clone(), EventType::Deleted, None);
        Some(Arc::unwrap_or_clone(gone))
    }

    fn record(
        &mut self,
        key: Key,
        object: Arc<Value>,
        kind: EventType,
        previous: Option<Arc<Value>>,
    ) {
        self.dirty = true;
        let event = Arc::new(Event {
            rv: self.rv,
            kind,
            key,
            object,
            previous,
        });
        if self.history.len() >= HISTORY
            && let Some(old) = self.history.pop_front()
        {
            self.history_start = old.rv;
        }
        self.history.push_back(event.clone());
        let _ = self.tx.send(event);
    }

    /// The recorded changes after resourceVersion `after`, oldest first; None when the
    /// history no longer reaches back that far.
    pub fn changes_after(&self, after: u64) -> Option<impl Iterator<Item = &Event>> {
        if after < self.history_start {
            return None;
        }
        let from = self.history.partition_point(|e| e.rv <= after);
        Some(self.history.range(from..).map(|e| &**e))
    }

    /// A receiver of future changes and the recorded changes after `after`.
    pub fn subscribe(&self, after: u64) -> (broadcast::Receiver<Arc<Event>>, Vec<Arc<Event>>) {
        let backlog = self
            .history
            .iter()
            .filter(|e| e.rv > after)
            .cloned()
            .collect();
        (self.tx.subscribe(), backlog)
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_are_created_for_their_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.key");
        // Replacing a file others could read leaves one they cannot.
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn put_list_remove_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut s = Store::new();
        for (ns, name) in [("b", "x"), ("a", "y"), ("a", "x")] {
            let obj = json!({"metadata": {"name": name, "namespace": ns}});
            s.put(Key::new("", "configmaps", ns, name), obj, EventType::Added);
        }
        s.put(
            Key::new("", "secrets", "a", "z"),
            json!({"metadata": {"name": "z", "namespace": "a"}}),
            EventType::Added,
        );
        let names: Vec<_> = s
            .list("", "configmaps", None)
            .map(|(k, _)| format!("{}/{}", k.namespace, k.name))
            .collect();
        assert_eq!(names, ["a/x", "a/y", "b/x"]);
        assert_eq!(s.list("", "configmaps", Some("a")).count(), 2);
        s.remove(&Key::new("", "configmaps", "a", "y")).unwrap();
        assert_eq!(s.resource_version(), 6);
        write_atomic(&path, &s.state().encode().unwrap()).unwrap();
        let l = Store::load(&path).unwrap();
        assert_eq!(l.resource_version(), 6);
        assert_eq!(l.list("", "configmaps", None).count(), 2);
        let (_, backlog) = s.subscribe(4);
        assert_eq!(backlog.len(), 2);
    }
}
